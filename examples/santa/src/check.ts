/**
 * The checker: replays the whole event history and verifies the Santa Claus rules.
 *
 * - A reindeer group is exactly all the reindeer; an elf group exactly three distinct elves.
 * - Reindeer go first: an elf group is dispatched only when not all reindeer were ready.
 * - One group at a time: every dispatch follows the previous group's release.
 * - Santa never works alone: no empty group.
 * - A worker is in at most one group at a time, and joins a group only when ready again after
 *   its vacation (a "ready" event after its last release).
 * - Every dispatched group is released.
 * - Progress: both kinds of groups were served (when both kinds exist).
 *
 * Events are in commit order: each is written in the transaction of the change it records, and
 * numbered (`seq`) from a counter that transaction bumps, which the history is read by.
 */
import { ConvexHttpClient } from 'convex/browser';
import { api } from '../convex/_generated/api.js';

export interface Event {
  readonly _id: string;
  readonly _creationTime: number;
  /** Its place in commit order (absent in hand-made histories). */
  readonly seq?: number;
  readonly type: 'register' | 'ready' | 'dispatch' | 'release';
  readonly worker?: string;
  readonly kind?: 'reindeer' | 'elf';
  readonly group?: number;
  readonly members?: string[];
  readonly readyReindeer?: number;
  readonly readyElves?: number;
  readonly reindeerTotal?: number;
}

export interface Report {
  readonly ok: boolean;
  readonly violations: string[];
  readonly cycles: number;
  readonly reindeerGroups: number;
  readonly elfGroups: number;
  readonly events: number;
}

const MAX_VIOLATIONS = 20;

export function check(events: readonly Event[]): Report {
  const violations: string[] = [];
  const fail = (message: string) => {
    if (violations.length < MAX_VIOLATIONS) violations.push(message);
  };
  type Worker = { kind: 'reindeer' | 'elf'; state: 'ready' | 'working' | 'vacationing' };
  const workers = new Map<string, Worker>();
  let open: { group: number; members: string[] } | null = null;
  let lastGroup = 0;
  let reindeerGroups = 0;
  let elfGroups = 0;
  for (const event of events) {
    switch (event.type) {
      case 'register':
        if (workers.has(event.worker!)) fail(`worker ${event.worker} registered twice`);
        workers.set(event.worker!, { kind: event.kind!, state: 'ready' });
        break;
      case 'ready': {
        const worker = workers.get(event.worker!);
        if (worker === undefined) fail(`unknown worker ${event.worker} came back`);
        else if (worker.state !== 'vacationing')
          fail(`worker ${event.worker} came back from a vacation while ${worker.state}`);
        else worker.state = 'ready';
        break;
      }
      case 'dispatch': {
        const group = event.group!;
        const members = event.members ?? [];
        if (open !== null)
          fail(`group ${group} dispatched while group ${open.group} was still at work`);
        if (group !== lastGroup + 1) fail(`group ${group} follows group ${lastGroup}`);
        lastGroup = group;
        if (members.length === 0) fail(`group ${group}: Santa worked alone`);
        if (new Set(members).size !== members.length) fail(`group ${group} has a worker twice`);
        const reindeer = [...workers.entries()].filter(([, w]) => w.kind === 'reindeer');
        if (event.kind === 'reindeer') {
          reindeerGroups++;
          if (
            members.length !== reindeer.length ||
            reindeer.some(([id]) => !members.includes(id))
          ) {
            fail(
              `group ${group}: a reindeer group must be all ${reindeer.length} reindeer, had ${members.length}`,
            );
          }
        } else {
          elfGroups++;
          if (members.length !== 3)
            fail(`group ${group}: an elf group must be 3 elves, had ${members.length}`);
          if (event.readyReindeer === event.reindeerTotal && (event.reindeerTotal ?? 0) > 0) {
            fail(
              `group ${group}: elves were chosen while all ${event.reindeerTotal} reindeer were ready`,
            );
          }
          const readyReindeer = reindeer.filter(([, w]) => w.state === 'ready').length;
          if (reindeer.length > 0 && readyReindeer === reindeer.length) {
            fail(`group ${group}: elves were chosen while the history shows all reindeer ready`);
          }
        }
        for (const id of members) {
          const worker = workers.get(id);
          if (worker === undefined) fail(`group ${group}: unknown worker ${id}`);
          else if (worker.kind !== event.kind)
            fail(`group ${group}: a ${worker.kind} in a ${event.kind} group`);
          else if (worker.state !== 'ready')
            fail(`group ${group}: worker ${id} joined while ${worker.state}`);
          else worker.state = 'working';
        }
        open = { group, members };
        break;
      }
      case 'release': {
        if (open === null || open.group !== event.group) {
          fail(
            `group ${event.group} released but ${open === null ? 'no group' : `group ${open.group}`} was at work`,
          );
          break;
        }
        for (const id of open.members) {
          const worker = workers.get(id);
          if (worker !== undefined) worker.state = 'vacationing';
        }
        open = null;
        break;
      }
    }
  }
  if (open !== null) fail(`group ${open.group} was never released`);
  const kinds = new Set([...workers.values()].map((w) => w.kind));
  if (kinds.has('reindeer') && reindeerGroups === 0) fail('the reindeer never delivered');
  if (
    kinds.has('elf') &&
    [...workers.values()].filter((w) => w.kind === 'elf').length >= 3 &&
    elfGroups === 0
  ) {
    fail('the elves never made presents');
  }
  return {
    ok: violations.length === 0,
    violations,
    cycles: reindeerGroups + elfGroups,
    reindeerGroups,
    elfGroups,
    events: events.length,
  };
}

/** Reads the whole history from a running workshop server. */
export async function readHistory(url: string): Promise<Event[]> {
  const client = new ConvexHttpClient(url);
  const events: Event[] = [];
  let cursor: string | null = null;
  for (;;) {
    const page: { page: unknown[]; isDone: boolean; continueCursor: string } = await client.query(
      api.observer.history,
      {
        paginationOpts: { numItems: 2000, cursor },
      },
    );
    events.push(...(page.page as unknown as Event[]));
    if (page.isDone) return events;
    cursor = page.continueCursor;
  }
}

export function describe(report: Report): string {
  const summary = `${report.cycles} groups (${report.reindeerGroups} reindeer, ${report.elfGroups} elves), ${report.events} events`;
  return report.ok
    ? `Checker: all rules hold over ${summary}`
    : `Checker: ${report.violations.length} rule violations over ${summary}:\n  ${report.violations.join('\n  ')}`;
}

// `npm run santa:check -- --url http://127.0.0.1:3210`: check a running workshop.
if (import.meta.url === `file://${process.argv[1]}`) {
  const index = process.argv.indexOf('--url');
  const url = index === -1 ? 'http://127.0.0.1:3210' : process.argv[index + 1]!;
  const report = check(await readHistory(url));
  console.log(describe(report));
  process.exitCode = report.ok ? 0 : 1;
}
