import { convexToJson, type Value } from 'convex/values';

/** A Convex value as its JSON text (int64 as `{"$integer": ...}`, bytes as `{"$bytes": ...}`). */
export function jsonText(value: Value | undefined, indent = 2): string {
  if (value === undefined) return 'undefined';
  try {
    return JSON.stringify(convexToJson(value), null, indent);
  } catch (error) {
    return `(not shown: ${error instanceof Error ? error.message : 'unknown value'})`;
  }
}

/** One line of JSON, cut at `max` characters. */
export function jsonShort(value: Value | undefined, max = 80): string {
  const text = jsonText(value, 0);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

const timeFormat = new Intl.DateTimeFormat(undefined, {
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
  hour12: false,
});

/** A timestamp (ms epoch) as local date and time, or a dash. */
export function formatTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  const date = new Date(ms);
  return `${timeFormat.format(date)}.${String(date.getMilliseconds()).padStart(3, '0')}`;
}

/** A duration in ms, readable: 0.31 ms, 850 ms, 3.2 s, 4 min 10 s, 2 h 5 min. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  if (ms < 0) return `-${formatDuration(-ms)}`;
  // Most function runs take well under a millisecond: show them as more than "0 ms".
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
  return `${Math.floor(ms / 3_600_000)} h ${Math.round((ms % 3_600_000) / 60_000)} min`;
}

/** How long ago (or, for a future time, how soon), from `now`. */
export function formatRelative(ms: number | null | undefined, now: number): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  const delta = ms - now;
  return delta > 0 ? `in ${formatDuration(delta)}` : `${formatDuration(-delta)} ago`;
}

export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return '—';
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** Counts are capped by the server at 10,000: shown as "10,000+". */
export function formatCount(count: number | undefined, cap = 10_000): string {
  if (count === undefined) return '—';
  return count >= cap ? `${cap.toLocaleString()}+` : count.toLocaleString();
}

/** "1 job", "3 jobs". */
export function counted(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
