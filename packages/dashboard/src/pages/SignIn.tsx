import { useState, type FormEvent } from 'react';

/** The admin key screen: the only thing shown until a key has been accepted. */
export function SignIn({
  onSignIn,
  initialError,
}: {
  onSignIn: (key: string) => Promise<string | null>;
  initialError: string | null;
}) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string | null>(initialError);
  const [busy, setBusy] = useState(false);

  const submit = (event: FormEvent) => {
    event.preventDefault();
    const trimmed = key.trim();
    if (trimmed === '') {
      setError('Enter the admin key');
      return;
    }
    setBusy(true);
    setError(null);
    onSignIn(trimmed).then(
      (refused) => {
        // On success this screen is gone; only a refusal comes back here.
        if (refused !== null) {
          setError(refused);
          setBusy(false);
        }
      },
      (thrown: unknown) => {
        setError(thrown instanceof Error ? thrown.message : String(thrown));
        setBusy(false);
      },
    );
  };

  return (
    <main className="center">
      <title>Sign in · Sleigh</title>
      <form
        className="sign-in card"
        data-testid="sign-in"
        onSubmit={submit}
        aria-labelledby="sign-in-title"
      >
        <h1 id="sign-in-title">Sleigh dashboard</h1>
        <p className="muted">
          Enter this deployment&apos;s admin key. <code>sleigh dev</code> prints it when it starts;
          it is also in the data directory&apos;s <code>admin_key</code> file.
        </p>
        {/* Lets password managers file the key under a name. */}
        <input type="text" name="username" autoComplete="username" value="admin" readOnly hidden />
        <label className="field">
          <span className="field-label">Admin key</span>
          <input
            type="password"
            name="admin-key"
            autoComplete="current-password"
            autoFocus
            value={key}
            onChange={(event) => setKey(event.target.value)}
            aria-invalid={error !== null}
          />
        </label>
        {error !== null && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Checking…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
