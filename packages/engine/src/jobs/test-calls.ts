/**
 * Calls the job tests make into the `pools` test app (graph.ts): results, steps run, and
 * whether jobs have settled.
 */
import { jsonToConvex, type JSONValue, type Value } from 'convex/values';
import type { Engine } from '../engine.js';

export async function call(
  promise: Promise<{ ok: boolean; value?: JSONValue; error?: Error }>,
): Promise<Value> {
  const result = await promise;
  if (!result.ok) throw result.error ?? new Error('failed');
  return jsonToConvex(result.value!);
}

export interface Step {
  label: string;
  start: number;
  end: number;
  inputs: string[];
}
export type Result = { kind: string; returnValue?: Value; error?: string; reason?: string } | null;

export const steps = async (engine: Engine) =>
  (await call(engine.query('graph:steps', {}))) as unknown as Step[];
export const results = async (engine: Engine, ids: string[], pool = 'graph') =>
  (await call(engine.query('graph:results', { pool, ids }))) as unknown as Result[];
export const settled = async (engine: Engine, ids: string[], pool = 'graph') =>
  (await results(engine, ids, pool)).every((result) => result !== null);
export const byLabel = (all: Step[], label: string) => all.filter((step) => step.label === label);
