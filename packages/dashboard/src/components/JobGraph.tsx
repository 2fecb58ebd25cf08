import dagre from '@dagrejs/dagre';
import { useId, useMemo } from 'react';
import { useHref, useNavigate } from 'react-router';
import { JOB_STATES, type GraphNode, type JobGraph as Graph } from '../api';

const NODE_WIDTH = 168;
const NODE_HEIGHT = 46;

export type RankDir = 'LR' | 'TB';

/** What a node shows as its state: a finished job that was canceled reads "canceled". */
export function shownState(node: Pick<GraphNode, 'state' | 'outcome'>): string {
  if (node.state === 'finished' && node.outcome === 'canceled') return 'canceled';
  return node.state;
}

/** The legend's entries, in the order a job goes through them. */
export const LEGEND = [...JOB_STATES, 'canceled'] as const;

interface Laid {
  width: number;
  height: number;
  nodes: Array<GraphNode & { x: number; y: number }>;
  edges: Array<{ parent: string; child: string; points: Array<{ x: number; y: number }> }>;
}

function lay(graph: Graph, rankdir: RankDir): Laid {
  const g = new dagre.graphlib.Graph<
    object,
    { width: number; height: number; x?: number; y?: number },
    { points?: Array<{ x: number; y: number }> }
  >();
  g.setGraph({ rankdir, nodesep: 20, ranksep: 56, edgesep: 12, marginx: 12, marginy: 12 });
  g.setDefaultEdgeLabel(() => ({}));
  const byId = new Map(graph.nodes.map((node) => [node.id, node]));
  for (const node of graph.nodes) g.setNode(node.id, { width: NODE_WIDTH, height: NODE_HEIGHT });
  for (const edge of graph.edges) {
    if (byId.has(edge.parent) && byId.has(edge.child)) g.setEdge(edge.parent, edge.child);
  }
  dagre.layout(g);
  const label = g.graph() as { width?: number; height?: number };
  return {
    width: Math.ceil(label.width ?? NODE_WIDTH),
    height: Math.ceil(label.height ?? NODE_HEIGHT),
    nodes: graph.nodes.map((node) => {
      const placed = g.node(node.id);
      return { ...node, x: placed.x ?? 0, y: placed.y ?? 0 };
    }),
    edges: g.edges().map((e) => ({
      parent: e.v,
      child: e.w,
      points: g.edge(e).points ?? [],
    })),
  };
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export function GraphLegend() {
  return (
    <ul className="legend" aria-label="Job states">
      {LEGEND.map((state) => (
        <li key={state}>
          <span className={`swatch node-${state}`} aria-hidden="true" />
          {state}
        </li>
      ))}
    </ul>
  );
}

/**
 * A job dependency graph laid out by dagre and drawn as SVG: each node is a link to its job
 * page named "<name>: <state>", carrying `data-state` (and `data-outcome`, `data-job-id`).
 */
export function JobGraph({
  graph,
  current,
  rankdir,
}: {
  graph: Graph;
  /** The job whose page this is: drawn highlighted. */
  current?: string;
  rankdir: RankDir;
}) {
  const laid = useMemo(() => lay(graph, rankdir), [graph, rankdir]);
  const marker = `arrow-${useId().replace(/[^a-zA-Z0-9_-]/g, '')}`;
  const navigate = useNavigate();
  const base = useHref('/jobs/');

  return (
    <div className="graph-scroll">
      <svg
        className="job-graph"
        width={laid.width}
        height={laid.height}
        viewBox={`0 0 ${laid.width} ${laid.height}`}
        role="group"
        aria-label={`Dependency graph, ${graph.nodes.length} jobs`}
        data-testid="job-graph"
      >
        <defs>
          <marker
            id={marker}
            viewBox="0 0 10 10"
            refX="9"
            refY="5"
            markerWidth="7"
            markerHeight="7"
            orient="auto-start-reverse"
          >
            <path d="M 0 0 L 10 5 L 0 10 z" className="edge-arrow" />
          </marker>
        </defs>
        <g aria-hidden="true">
          {laid.edges.map((edge) => (
            <polyline
              key={`${edge.parent}-${edge.child}`}
              className="edge"
              points={edge.points.map((p) => `${p.x},${p.y}`).join(' ')}
              markerEnd={`url(#${marker})`}
            />
          ))}
        </g>
        {laid.nodes.map((node) => {
          const state = shownState(node);
          const href = `${base}${encodeURIComponent(node.id)}`;
          return (
            <a
              key={node.id}
              href={href}
              className={`node node-${state}`}
              aria-label={`${node.name}: ${state}`}
              aria-current={node.id === current ? 'page' : undefined}
              data-testid="graph-node"
              data-job-id={node.id}
              data-state={node.state}
              data-outcome={node.outcome ?? undefined}
              onClick={(event) => {
                if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
                event.preventDefault();
                void navigate(`/jobs/${encodeURIComponent(node.id)}`);
              }}
            >
              <title>{`${node.name} (${node.fn}): ${state}`}</title>
              <rect
                x={node.x - NODE_WIDTH / 2}
                y={node.y - NODE_HEIGHT / 2}
                width={NODE_WIDTH}
                height={NODE_HEIGHT}
                rx="6"
              />
              <text x={node.x} y={node.y - 4} textAnchor="middle" className="node-name">
                {clip(node.name, 22)}
              </text>
              <text x={node.x} y={node.y + 13} textAnchor="middle" className="node-state">
                {state}
              </text>
            </a>
          );
        })}
      </svg>
    </div>
  );
}
