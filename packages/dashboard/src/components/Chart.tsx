import { useEffect, useRef } from 'react';
import uPlot, { type AlignedData, type Options } from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface SeriesSpec {
  label: string;
  /** A colour: canvas needs a concrete one (CSS variables are read into it). */
  color: string;
  /** Unit shown in the legend's values. */
  unit?: string;
  /** Draw each value as a dot too (sparse series, where lone values would not show). */
  points?: boolean;
}

interface Props {
  /** The chart's accessible name; the figure's caption. */
  title: string;
  series: SeriesSpec[];
  /** x: times in ms epoch; ys: one array per series (null: no value). */
  times: number[];
  values: Array<Array<number | null>>;
  height?: number;
  testId?: string;
  /** A sentence about the latest values, read by screen readers instead of the canvas. */
  summary: string;
}

function cssVar(name: string, fallback: string): string {
  const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return value === '' ? fallback : value;
}

/**
 * A time-series chart on uPlot: the plot is made once per set of series and given new data as
 * it comes; it follows its container's width.
 */
export function Chart({ title, series, times, values, height = 180, testId, summary }: Props) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const seriesKey = series
    .map((s) => `${s.label}:${s.color}:${s.unit ?? ''}:${String(s.points)}`)
    .join('|');
  const data: AlignedData = [times.map((t) => t / 1000), ...values];

  useEffect(() => {
    const element = box.current;
    if (element === null) return;
    const axis = cssVar('--text-muted', '#666');
    const grid = cssVar('--border', '#ddd');
    const options: Options = {
      width: Math.max(element.clientWidth, 200),
      height,
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: { time: true },
        y: { range: (_u, min, max) => [Math.min(0, min), Math.max(1, max)] },
      },
      axes: [
        { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
        { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: 50 },
      ],
      series: [
        {},
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          spanGaps: false,
          points: s.points === true ? { show: true, size: 5, fill: s.color } : { show: false },
          value: (_u: uPlot, v: number | null) =>
            v === null ? '—' : `${Number.isInteger(v) ? v : v.toFixed(1)}${s.unit ?? ''}`,
        })),
      ],
    };
    // Made empty: the effect below gives it its data (it runs after this one, every render).
    const chart = new uPlot(options, [[], ...series.map(() => [])], element);
    plot.current = chart;
    const observer = new ResizeObserver(() => {
      const width = Math.max(element.clientWidth, 200);
      if (width !== chart.width) chart.setSize({ width, height });
    });
    observer.observe(element);
    return () => {
      observer.disconnect();
      chart.destroy();
      plot.current = null;
    };
    // The plot is rebuilt only when its series change; data is pushed below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [seriesKey, height]);

  useEffect(() => {
    plot.current?.setData(data);
  });

  return (
    <figure className="chart" data-testid={testId}>
      <figcaption>{title}</figcaption>
      <div ref={box} role="img" aria-label={`${title}: ${summary}`} />
    </figure>
  );
}
