/**
 * The graph benchmark's functions: a root, `width` leaves that depend on it, and a sink that
 * depends on every leaf (fan-out then fan-in), all no-op actions through a pool of 10.
 */
import { Workpool, type GraphNode } from '@sleigh/workpool';
import { v } from 'convex/values';
import { internal } from './_generated/api';
import { internalAction, mutation } from './_generated/server';

const pool = new Workpool('graph', { maxParallelism: 10 });

export const node = internalAction({
  args: { i: v.number() },
  handler: async () => null,
});

export const enqueueFan = mutation({
  args: { width: v.number() },
  handler: async (ctx, { width }) => {
    const nodes: Record<string, GraphNode> = {
      root: { action: internal.graph.node, args: { i: -1 } },
    };
    const leaves: string[] = [];
    for (let i = 0; i < width; i++) {
      nodes[`leaf${i}`] = { action: internal.graph.node, args: { i }, dependsOn: ['root'] };
      leaves.push(`leaf${i}`);
    }
    nodes.sink = { action: internal.graph.node, args: { i: width }, dependsOn: leaves };
    await pool.enqueueGraph(ctx, nodes);
  },
});
