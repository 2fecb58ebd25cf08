/**
 * `sleigh run <module:function> [json]`: one function call on a running server, as the admin
 * (internal functions too), printing its value, or its error and data.
 */
import { jsonToConvex, type JSONValue } from 'convex/values';
import { CliError, type Output } from './context.js';
import { printableLines } from './printable.js';
import { callServer, refusal, type Access } from './remote.js';

/** Longer than any action may run (Convex's limit is 10 minutes). */
const RUN_TIMEOUT_MS = 11 * 60_000;

/** A JSON value as people read it: Convex values (int64, bytes) shown plainly. */
function display(json: JSONValue): string {
  return JSON.stringify(
    jsonToConvex(json),
    (_key, value: unknown) =>
      typeof value === 'bigint'
        ? `${value}n`
        : value instanceof ArrayBuffer
          ? `<${value.byteLength} bytes>`
          : value,
    2,
  );
}

export async function runFunction(
  positionals: string[],
  /** Asked once the arguments are known to be right. */
  serverAccess: () => Access,
  output: Output,
): Promise<number> {
  const [path, argsText] = positionals;
  if (path === undefined)
    throw new CliError(
      'sleigh run needs a function: sleigh run messages:list \'{"channel":"a"}\'',
      2,
    );
  let args: unknown = {};
  if (argsText !== undefined) {
    try {
      args = JSON.parse(argsText);
    } catch {
      throw new CliError(`The arguments are not valid JSON: ${argsText}`, 2);
    }
  }
  const answer = await callServer(
    serverAccess(),
    '/api/function',
    { method: 'POST', body: JSON.stringify({ path, args, format: 'convex_encoded_json' }) },
    RUN_TIMEOUT_MS,
  );
  const body = answer.body as {
    status?: string;
    value?: JSONValue;
    errorMessage?: string;
    errorData?: JSONValue;
    logLines?: string[];
  };
  // What the function logged, returned or threw may carry anyone's text: printed as is, its
  // escape sequences would act on the terminal (JSON escapes C0 controls, not C1 ones).
  for (const line of body.logLines ?? []) output.err(printableLines(line));
  if (body.status === 'success') {
    output.out(printableLines(display(body.value ?? null)));
    return 0;
  }
  if (body.status === 'error') {
    output.err(printableLines(body.errorMessage ?? 'The function failed'));
    if (body.errorData !== undefined)
      output.err(`data: ${printableLines(display(body.errorData))}`);
    return 1;
  }
  throw new CliError(refusal(answer));
}
