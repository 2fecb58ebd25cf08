import { Component, type ErrorInfo, type ReactNode } from 'react';
import { errorMessage } from '../hooks';

interface Props {
  children: ReactNode;
  /** Shown before the error's message. */
  title?: string;
  /** When this changes, the boundary tries its children again (a new page, new arguments). */
  resetKey?: unknown;
}

interface State {
  error: unknown;
  resetKey: unknown;
}

/**
 * Catches what a page (or a part of one) throws while rendering — a failing paginated query
 * throws — and shows its message in place, with a button to try again.
 */
export class ErrorBoundary extends Component<Props, State> {
  override state: State = { error: null, resetKey: this.props.resetKey };

  static getDerivedStateFromError(error: unknown): Partial<State> {
    return { error: error ?? new Error('Unknown error') };
  }

  static getDerivedStateFromProps(props: Props, state: State): Partial<State> | null {
    if (props.resetKey !== state.resetKey) return { error: null, resetKey: props.resetKey };
    return null;
  }

  override componentDidCatch(_error: unknown, _info: ErrorInfo): void {
    // Shown on the page; the root's onCaughtError keeps the console quiet.
  }

  override render(): ReactNode {
    if (this.state.error === null) return this.props.children;
    return (
      <div className="error" role="alert">
        {this.props.title !== undefined && <strong>{this.props.title}: </strong>}
        <span className="error-message">{errorMessage(this.state.error)}</span>{' '}
        <button type="button" className="small" onClick={() => this.setState({ error: null })}>
          Try again
        </button>
      </div>
    );
  }
}
