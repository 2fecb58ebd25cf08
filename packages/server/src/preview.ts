/**
 * A client's value as an error message quotes it: JSON, cut to `max` characters. Never throws:
 * a value nested too deeply for JSON.stringify (a hostile request, say) is only described.
 */
export function preview(value: unknown, max = 100): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    return Array.isArray(value) ? 'an array nested too deeply to show' : 'a value too deep to show';
  }
  if (text === undefined) return String(value);
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
