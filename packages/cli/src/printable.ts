/**
 * Text from elsewhere (a job's error, a function's log line, a server's message) made safe to
 * print on a terminal. Control characters act on it: ESC starts sequences that retitle the
 * window, clear the screen or forge colours, a carriage return or newline forges a line, and
 * bidirectional overrides reorder what is shown. They are printed as escapes (`\u001b`) instead.
 */

/* eslint-disable no-control-regex -- matching control characters is the point */
// Every C0 and C1 control, DEL, line and paragraph separators, and the bidirectional controls.
const UNSAFE =
  /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
// The same, but newlines and tabs pass: text whose lines are its own (an error's stack).
const UNSAFE_BUT_LINES =
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
/* eslint-enable no-control-regex */

function escape(char: string): string {
  if (char === '\n') return '\\n';
  if (char === '\r') return '\\r';
  if (char === '\t') return '\\t';
  return `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/** `text` with every control character escaped: it prints as one line and acts on nothing. */
export function printable(text: string): string {
  return text.replace(UNSAFE, escape);
}

/** `text` with control characters escaped except newlines and tabs. */
export function printableLines(text: string): string {
  return text.replace(UNSAFE_BUT_LINES, escape);
}
