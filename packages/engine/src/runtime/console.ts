/**
 * `console` inside a function writes log lines for that function (`[LOG] text`, the format
 * Convex clients print), not to the server's own output. Outside functions, console is untouched.
 * A sink may mirror every function's lines (the dev server prints them; the dashboard streams them).
 */
import { formatWithOptions } from 'node:util';
import { currentExecution, type Execution } from './context.js';

const LEVELS = {
  log: 'LOG',
  info: 'INFO',
  debug: 'DEBUG',
  warn: 'WARN',
  error: 'ERROR',
} as const;

/** Most log lines kept per function run; more are dropped with one notice. */
const MAX_LINES = 256;
const MAX_LINE_LENGTH = 32 * 1024;

export type LogSink = (execution: Execution, line: string) => void;

let installed = false;
let sink: LogSink | null = null;

export function setLogSink(next: LogSink | null): void {
  sink = next;
}

export function appendLogLine(execution: Execution, line: string): void {
  const lines = execution.logLines;
  if (lines.length > MAX_LINES) return;
  const text =
    lines.length === MAX_LINES
      ? `[WARN] Log overflow: more than ${MAX_LINES} lines; the rest were dropped`
      : line.length > MAX_LINE_LENGTH
        ? `${line.slice(0, MAX_LINE_LENGTH)} (truncated)`
        : line;
  lines.push(text);
  sink?.(execution, text);
}

export function installConsoleCapture(): void {
  if (installed) return;
  installed = true;
  const target = console as unknown as Record<string, (...args: unknown[]) => void>;
  for (const [method, level] of Object.entries(LEVELS)) {
    const real = target[method]!.bind(console);
    target[method] = (...args: unknown[]) => {
      const execution = currentExecution();
      if (execution === undefined) {
        real(...args);
        return;
      }
      appendLogLine(
        execution,
        `[${level}] ${formatWithOptions({ colors: false, depth: 4 }, ...args)}`,
      );
    };
  }
}
