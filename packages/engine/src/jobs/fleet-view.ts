/**
 * Whose background work is it: while a deploy rolls out, old and new servers share the database
 * (loader/fleet-guard.ts lets a server start beside others whose schema it keeps), and
 * one version may schedule or enqueue functions the other lacks, or has with other arguments.
 * Each job records the function's *signature* (kind, visibility, validators) on the server that
 * enqueued it (`sig`), and a server leaves the work to the servers that run it as it was
 * enqueued, rather than fail it as unknown or run it with arguments its version refuses.
 *
 * `leavesToOthers(path, sig)` is no for a function this server has with that signature (or a
 * job that records none). Otherwise it is yes while a live server's record (`_servers`) lists
 * the function, with that signature when this server has the function too. Work this server
 * has not looked up yet is left alone until the records are read again, *after* it was first
 * seen: the server that enqueued it had recorded itself before (its record commits in the
 * transaction that applies its schema), so that read finds it if it is live. When none is, the
 * work is this server's again, and runs or fails as it would in a fleet of one version (an
 * unknown function; arguments checked against this version's validators). A job of a
 * signature this server has costs one map lookup and a comparison: the cost in a fleet of one
 * version.
 *
 *   other path or signature seen ──▶ left alone, records read again
 *        ──┬▶ a live server runs it as enqueued ──▶ left alone
 *          └▶ none does ──▶ claimed here: fails as unknown, or runs if its arguments pass
 *
 * The records are read again when a commit writes `_servers` (a server started or reloaded),
 * and every few seconds while some live server runs work this one leaves (it may stop). Each
 * read wakes the runners, so work left alone is looked at again. Claims look past the work
 * they leave alone (readPastLeftWork), so it never holds up the work behind it.
 */
import { keySuccessor, type Commit, type IndexEntry, type Store } from '@sleigh/storage';
import { serverRecords, writesServers } from '../loader/fleet-guard.js';

/** How often the records are read again while another server runs work this one leaves. */
const RECHECK_MS = 5000;

/** How many entries of work left to other servers one claim looks past, at most. */
export const PASS_OVER_AT_MOST = 2000;

/**
 * Reads a range of pending work for a claim: `first` is its first page, `next` the page after
 * a key. `visit` looks at each entry and says whether its work is left to other servers;
 * reading stops once `enough()`. A page that held such work is followed by the next (up to
 * PASS_OVER_AT_MOST entries of it in all), so a burst of one version's work during a rollout
 * does not hold up the other's behind it; in a fleet of one version this is one page.
 */
export async function readPastLeftWork(
  first: Promise<IndexEntry[]>,
  next: (after: Uint8Array) => Promise<IndexEntry[]>,
  visit: (entry: IndexEntry) => boolean,
  enough: () => boolean,
): Promise<void> {
  let entries = await first;
  let passedOver = 0;
  for (;;) {
    let left = 0;
    for (const entry of entries) {
      if (enough()) return;
      if (visit(entry)) left++;
    }
    passedOver += left;
    if (enough() || left === 0 || passedOver >= PASS_OVER_AT_MOST) return;
    entries = await next(keySuccessor(entries[entries.length - 1]!.key));
  }
}

/** Work of the function at `path` as a server with signature `sig` runs it. */
function workKey(path: string, sig: string): string {
  return `${path}#${sig}`;
}

export class FleetView {
  /**
   * Work live servers run and this one leaves to them, as of the last read: paths of functions
   * it lacks, `workKey`s of those it has with another signature.
   */
  private elsewhere = new Set<string>();
  /** Such work (path or `workKey`), by the number of reads started when it was first seen. */
  private readonly firstSeen = new Map<string, number>();
  private readsStarted = 0;
  private readsDone = 0;
  private reading = false;
  private readAgain = false;
  private timer: NodeJS.Timeout | null = null;
  private unsubscribe: (() => void) | null = null;
  private stopped = false;

  constructor(
    private readonly store: Store,
    /** The signature of this server's function at `path` (undefined: it has none). */
    private readonly signature: (path: string) => string | null | undefined,
    /** Called after each read: runners look again at what they left alone. */
    private readonly wake: () => void,
    private readonly log: (message: string) => void,
  ) {}

  start(): void {
    this.stopped = false;
    this.unsubscribe ??= this.store.onCommit((commit) => this.onCommit(commit), {
      unordered: true,
    });
    this.read();
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe?.();
    this.unsubscribe = null;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /**
   * How many functions a live server has that this one lacks or has with another signature:
   * above 0 during a rollout.
   */
  get lacked(): number {
    return this.elsewhere.size;
  }

  /**
   * Whether background work of the function at `path`, enqueued where it had signature `sig`,
   * is left to other servers now.
   */
  leavesToOthers(path: string, sig: string | undefined): boolean {
    const own = this.signature(path);
    // Sleigh's own functions (no signature) and jobs from before signatures are anyone's.
    if (own !== undefined && (sig === undefined || own === null || own === sig)) return false;
    const key = own === undefined ? path : workKey(path, sig!);
    if (this.elsewhere.has(key)) return true;
    const seen = this.firstSeen.get(key);
    if (seen === undefined) {
      this.firstSeen.set(key, this.readsStarted);
      this.read();
      return true;
    }
    // Left alone until a read that started after it was first seen has finished.
    return this.readsDone <= seen;
  }

  private onCommit(commit: Commit): void {
    if (writesServers(this.store, commit)) this.read();
  }

  private read(): void {
    if (this.stopped) return;
    if (this.reading) {
      this.readAgain = true;
      return;
    }
    this.reading = true;
    const number = ++this.readsStarted;
    void this.lookUp()
      .then(
        (elsewhere) => {
          this.elsewhere = elsewhere;
          this.readsDone = number;
        },
        (error: unknown) => this.log(`reading the servers' records failed: ${String(error)}`),
      )
      .finally(() => {
        this.reading = false;
        if (this.stopped) return;
        if (this.readAgain) {
          this.readAgain = false;
          this.read();
          return;
        }
        this.schedule();
        this.wake();
      });
  }

  /**
   * Reads again in a while: while work first seen waits for a read (the last one failed), and
   * periodically while live servers run work this one leaves to them (they may stop).
   */
  private schedule(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const unsettled = [...this.firstSeen.values()].some((seen) => this.readsDone <= seen);
    if (this.elsewhere.size === 0 && !unsettled) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.read();
    }, RECHECK_MS);
    this.timer.unref();
  }

  /**
   * The work live servers run and this one does not run as they do: the paths of functions it
   * lacks, and `workKey`s of functions it has with another signature.
   */
  private async lookUp(): Promise<Set<string>> {
    const records = await this.store.read(serverRecords);
    const lacking = records
      .map((record) => ({
        process: record.process,
        paths: Object.entries(record.outline?.functions ?? {}).flatMap(([path, sig]) => {
          const own = this.signature(path);
          if (own === undefined) return [path];
          return own === null || own === sig ? [] : [workKey(path, sig)];
        }),
      }))
      .filter(({ paths }) => paths.length > 0);
    // Only then ask who is live (a query of the database's sessions).
    if (lacking.length === 0) return new Set();
    const live = new Set((await this.store.processes()).map((server) => server.id));
    return new Set(
      lacking.filter(({ process }) => live.has(process)).flatMap(({ paths }) => paths),
    );
  }
}
