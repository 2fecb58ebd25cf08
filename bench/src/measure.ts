/**
 * Measuring helpers: throughput over a fixed time with a given number of operations in flight,
 * latency percentiles, and a table printer. Every figure is printed beside its baseline as a
 * ratio, because absolute numbers mean little across machines.
 */

export interface Throughput {
  readonly opsPerSecond: number;
  readonly operations: number;
}

export interface MeasureOptions {
  /** How long to measure, after a warm-up of a fifth of that. */
  readonly durationMs?: number;
  /** Operations in flight at once. */
  readonly concurrency?: number;
}

export async function throughput(
  operation: (i: number) => unknown,
  options: MeasureOptions = {},
): Promise<Throughput> {
  const durationMs = options.durationMs ?? Number(process.env.BENCH_MS ?? 2000);
  const concurrency = options.concurrency ?? 1;
  let counter = 0;
  const runFor = async (ms: number): Promise<number> => {
    const deadline = performance.now() + ms;
    let done = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < deadline) {
          await operation(counter++);
          done++;
        }
      }),
    );
    return done;
  };
  await runFor(durationMs / 5);
  const start = performance.now();
  const operations = await runFor(durationMs);
  const elapsed = performance.now() - start;
  return { opsPerSecond: (operations / elapsed) * 1000, operations };
}

export function percentile(sortedMs: readonly number[], p: number): number {
  if (sortedMs.length === 0) return NaN;
  const index = Math.min(sortedMs.length - 1, Math.ceil((p / 100) * sortedMs.length) - 1);
  return sortedMs[Math.max(0, index)]!;
}

export interface Row {
  readonly [column: string]: string | number;
}

function format(value: string | number): string {
  if (typeof value === 'string') return value;
  if (!Number.isFinite(value)) return '—';
  if (Number.isInteger(value) || Math.abs(value) >= 100)
    return Math.round(value).toLocaleString('en-US');
  return value.toFixed(2);
}

export function printTable(title: string, rows: readonly Row[]): void {
  if (rows.length === 0) return;
  const columns = Object.keys(rows[0]!);
  const cells = rows.map((row) => columns.map((column) => format(row[column] ?? '')));
  const widths = columns.map((column, i) =>
    Math.max(column.length, ...cells.map((line) => line[i]!.length)),
  );
  const line = (values: readonly string[]) =>
    values
      .map((value, i) => (i === 0 ? value.padEnd(widths[i]!) : value.padStart(widths[i]!)))
      .join('  ');
  console.log(`\n${title}\n`);
  console.log(line(columns));
  console.log(line(widths.map((w) => '-'.repeat(w))));
  for (const row of cells) console.log(line(row));
}
