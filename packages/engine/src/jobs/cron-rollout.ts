/**
 * Whose crons are in force while a deploy rolls out. `_cron_jobs` holds one set of crons, and
 * two versions sharing a database may declare different ones (loader/fleet-guard.ts lets them
 * start side by side). Were each to write its own, every start of either would undo the other.
 *
 * So a server writes its crons only when every other live server declares the same ones. Until
 * then the table keeps the crons of the servers that were there first, and this server's
 * runner ticks them as any other server's does; each run records the function's signature as
 * the cron's writer had it, so it goes to a server that runs it as declared (fleet-view.ts).
 * Once the servers declaring other crons are gone, the next look writes this server's. A deploy
 * that changes crons thus rolls out server by server and its crons take effect when the last
 * old server stops; an old server restarting meanwhile, or one started beside the new version
 * (a rollback), writes nothing back until the new version's servers are gone.
 *
 *   load ──▶ another live server declares other crons? ──no──▶ syncCrons: these are in force
 *                      │ yes                                         ▲
 *                      ▼                                             │
 *      wait: look again when `_servers` changes, before each tick, and every few seconds ╯
 *
 * Two servers that start together see each other: each records itself before it looks, and a
 * look that writes crons commits only if no server recorded itself since its snapshot.
 */
import type { Commit, Store } from '@sleigh/storage';
import { serverRecords, writesServers } from '../loader/fleet-guard.js';
import { syncCrons, type CronSpec } from './crons.js';
import { writeWithRetry } from './write-retry.js';

/** How often a server whose crons wait looks whether the others are gone. */
const RECHECK_MS = 3000;

/** What a load of the code declares. */
export interface DeclaredCrons {
  readonly crons: ReadonlyMap<string, CronSpec>;
  /** Their hash, as in the deployment's outline (`Outline.crons`). */
  readonly hash: string;
  /** The signature of the code's function at a path (null: none). */
  readonly signatureOf: (path: string) => string | null;
}

export class CronRollout {
  private declared: DeclaredCrons | null = null;
  /** Whether the declared crons are in `_cron_jobs` (or no other live server declares others). */
  private inForce = true;
  /** The live servers that declare other crons, as the last look found them. */
  private others: string[] = [];
  private log: ((message: string) => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private unsubscribe: (() => void) | null = null;
  private looking: Promise<void> | null = null;
  private lookAgain = false;

  constructor(
    private readonly store: Store,
    private readonly creationTime: () => number,
  ) {}

  /**
   * Declares the crons of a load: writes them when no other live server declares others, and
   * resolves with whether they are in force. Errors are the load's.
   */
  async declare(declared: DeclaredCrons): Promise<boolean> {
    this.declared = declared;
    this.inForce = await this.tryWrite(declared);
    if (!this.inForce) this.schedule();
    return this.inForce;
  }

  /** The live servers whose crons are in force instead of this one's (none: this one's are). */
  get waitingFor(): readonly string[] {
    return this.inForce ? [] : this.others;
  }

  /** Starts looking again while this server's crons wait (background work has started). */
  start(log: (message: string) => void): void {
    this.log = log;
    this.unsubscribe ??= this.store.onCommit((commit) => this.onCommit(commit), {
      unordered: true,
    });
    this.schedule();
  }

  stop(): void {
    this.log = null;
    this.unsubscribe?.();
    this.unsubscribe = null;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private onCommit(commit: Commit): void {
    if (!this.inForce && writesServers(this.store, commit)) void this.look();
  }

  private schedule(): void {
    if (this.inForce || this.log === null || this.timer !== null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.look();
    }, RECHECK_MS);
    this.timer.unref();
  }

  /**
   * Before a tick (CronRunner): while other servers' crons are in force, looks whether they
   * are gone, so that the crons of a version that is gone do not tick on after it.
   */
  async beforeTick(): Promise<void> {
    if (this.inForce) return;
    await this.look();
  }

  private look(): Promise<void> {
    if (this.looking !== null) {
      this.lookAgain = true;
      return this.looking;
    }
    const declared = this.declared;
    const log = this.log;
    if (declared === null || log === null) return Promise.resolve();
    this.looking = this.tryWrite(declared)
      .then(
        (written) => {
          // A reload declared other crons meanwhile: its own look decides.
          if (this.declared !== declared || this.inForce) return;
          this.inForce = written;
          if (written) {
            log(
              'crons: no server declaring other crons is left; this server’s crons are in force now',
            );
          }
        },
        (error: unknown) => log(`crons: looking at the other servers failed: ${String(error)}`),
      )
      .finally(() => {
        this.looking = null;
        if (this.lookAgain) {
          this.lookAgain = false;
          void this.look();
        } else {
          this.schedule();
        }
      });
    return this.looking;
  }

  /** Writes the declared crons unless another live server declares others. */
  private tryWrite(declared: DeclaredCrons): Promise<boolean> {
    return writeWithRetry(this.store, async (tx) => {
      const records = await serverRecords(tx);
      // Asked after the records are read: a server recorded there was connected by then.
      const live = new Map(
        (await this.store.processes())
          .filter((server) => !server.self)
          .map((server) => [server.id, server]),
      );
      this.others = records
        .filter((record) => live.has(record.process) && record.outline?.crons !== declared.hash)
        .map((record) => {
          const server = live.get(record.process)!;
          return `pid ${server.pid} on ${server.host}, code ${record.code}`;
        });
      if (this.others.length > 0) return false;
      await syncCrons(tx, declared.crons, Date.now(), this.creationTime, declared.signatureOf);
      return true;
    });
  }
}
