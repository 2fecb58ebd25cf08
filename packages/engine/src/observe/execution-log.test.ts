import { describe, expect, it } from 'vitest';
import { ExecutionLog, type ExecutionRecord } from './execution-log.js';

const run = (path: string, lines: string[] = []): Omit<ExecutionRecord, 'id'> => ({
  startedAt: Date.now(),
  durationMs: 1,
  path,
  kind: 'query',
  source: 'client',
  outcome: 'success',
  error: null,
  logLines: lines,
});

describe('the execution log', () => {
  it('keeps the newest executions up to its count', () => {
    const log = new ExecutionLog(3);
    for (let i = 0; i < 10; i++) log.record(run(`f:${i}`));
    expect(log.recent().map((entry) => entry.path)).toEqual(['f:9', 'f:8', 'f:7']);
    expect(log.total).toBe(10);
  });

  it('holds no more than its bytes of log lines, however much each run logs', () => {
    // A run may log 256 lines of 32 KiB (8 MiB): a thousand of them held whole would be 8 GiB.
    const log = new ExecutionLog(1000, 20 * 1024 * 1024);
    const lines = Array.from({ length: 256 }, () => 'x'.repeat(32 * 1024));
    for (let i = 0; i < 40; i++) {
      log.record(run(`chatty:${i}`, lines));
      log.record(run(`quiet:${i}`));
    }
    expect(log.heldBytes).toBeLessThanOrEqual(20 * 1024 * 1024);
    const kept = log.recent({ limit: 1000 }).map((entry) => entry.path);
    // The newest runs stay whole; older ones were let go to make room.
    expect(kept.slice(0, 2)).toEqual(['quiet:39', 'chatty:39']);
    expect(kept.filter((path) => path.startsWith('chatty:'))).toEqual(['chatty:39', 'chatty:38']);
    expect(log.recent({ function: 'chatty:39' })[0]!.logLines).toHaveLength(256);
    expect(log.total).toBe(80);
    // A run larger than the whole budget is kept while it is the newest.
    log.record(run('huge', [...lines, ...lines, ...lines]));
    expect(log.recent().map((entry) => entry.path)).toEqual(['huge']);
  });
});
