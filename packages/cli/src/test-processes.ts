/**
 * Real `sleigh` processes for tests: a copy of a test app to serve, and a spawner that waits
 * for the server to say where it listens and kills it when the test ends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TEST_APPS } from '@sleigh/testing';
import { onTestFinished } from 'vitest';
import type { Output } from './context.js';
import { main } from './main.js';

const here = dirname(fileURLToPath(import.meta.url));
export const BIN = join(here, '..', 'bin', 'sleigh.js');

/** A copy of a test app inside the repository (so its bundle resolves `convex`). */
export function project(app = 'basic'): string {
  const dir = join(here, '..', '.build', randomBytes(6).toString('hex'));
  mkdirSync(dir, { recursive: true });
  cpSync(join(TEST_APPS, app), dir, { recursive: true });
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** An Output that keeps every line, for calling the command in this process. */
export function capture(): Output & { lines: string[]; text(): string } {
  const lines: string[] = [];
  return {
    lines,
    out: (line) => lines.push(line),
    err: (line) => lines.push(line),
    tty: false,
    text: () => lines.join('\n'),
  };
}

/** `sleigh <args>` run in this process: its exit code and everything it printed. */
export async function sleighInProcess(args: string[]): Promise<{ code: number; output: string }> {
  const output = capture();
  const code = await main(args, output);
  return { code, output: output.text() };
}

export interface Running {
  readonly child: ChildProcess;
  readonly url: string;
  output(): string;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function sleigh(
  args: string[],
  cwd: string,
  env: Record<string, string> = {},
): Promise<Running> {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code, signal) => {
      // Ended by a signal it did not handle: say which, for the assertion that shows the output.
      if (signal !== null) output += `\n[sleigh ended by ${signal}]\n`;
      resolve(code);
    }),
  );
  const waitFor = async (pattern: RegExp, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = output.match(pattern);
      if (match !== null) return match;
      if (child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`Expected ${pattern} from sleigh ${args.join(' ')}; got:\n${output}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode === null) child.kill(signal);
    return exited;
  };
  onTestFinished(async () => {
    await stop('SIGKILL');
  });
  const ready =
    args[0] === 'dev' || args[0] === 'serve'
      ? await waitFor(/Sleigh ready at (http:\/\/\S+)/).catch(() => null)
      : null;
  return { child, url: ready?.[1] ?? '', output: () => output, waitFor, stop };
}
