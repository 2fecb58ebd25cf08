/**
 * The North Pole page: who is on vacation, ready, making presents (elves at work) and
 * delivering (reindeer at work), live from the workshop's server, and two sliders for the
 * paces (a mutation every actor's subscription picks up at once).
 */
import { ConvexProvider, ConvexReactClient, useMutation, useQuery } from 'convex/react';
import { StrictMode, useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { api } from '../../convex/_generated/api.js';

type Worker = {
  id: string;
  kind: 'reindeer' | 'elf';
  name: string;
  state: 'ready' | 'working' | 'vacationing';
};

const COLUMNS: Array<{ title: string; test: (w: Worker) => boolean; testId: string }> = [
  { title: '🏖️ On vacation', test: (w) => w.state === 'vacationing', testId: 'vacation' },
  { title: '🙋 Ready', test: (w) => w.state === 'ready', testId: 'ready' },
  {
    title: '🎁 Making presents',
    test: (w) => w.state === 'working' && w.kind === 'elf',
    testId: 'presents',
  },
  {
    title: '🛷 Delivering',
    test: (w) => w.state === 'working' && w.kind === 'reindeer',
    testId: 'delivering',
  },
];

function Pace({
  label,
  name,
  value,
}: {
  label: string;
  name: 'workMs' | 'vacationMs';
  value: number;
}) {
  const setSpeeds = useMutation(api.speeds.set);
  const [local, setLocal] = useState(value);
  useEffect(() => setLocal(value), [value]);
  return (
    <>
      <label htmlFor={name}>{label}</label>
      <input
        id={name}
        data-testid={`slider-${name}`}
        type="range"
        min={0}
        max={5000}
        step={50}
        value={local}
        onChange={(event) => {
          const next = Number(event.target.value);
          setLocal(next);
          void setSpeeds({ [name]: next });
        }}
      />
      <output data-testid={`pace-${name}`}>{value} ms</output>
    </>
  );
}

function NorthPole() {
  const board = useQuery(api.observer.board, {});
  const speeds = useQuery(api.speeds.get, {});
  if (board === undefined || speeds === undefined) return <p>Connecting to the workshop…</p>;
  const workers = board.workers as Worker[];
  return (
    <>
      <h1>The North Pole</h1>
      <p className="subtitle" data-testid="groups">
        {board.groups} groups so far{board.current ? ` — group ${board.current.group} at work` : ''}
      </p>
      <div className="columns">
        {COLUMNS.map((column) => {
          const members = workers.filter(column.test);
          return (
            <section className="column" key={column.testId}>
              <h2>
                {column.title} <span data-testid={`count-${column.testId}`}>{members.length}</span>
              </h2>
              {members.map((w) => (
                <span className="worker" key={w.id}>
                  {w.kind === 'reindeer' ? '🦌' : '🧝'} {w.name}
                </span>
              ))}
            </section>
          );
        })}
      </div>
      <div className="controls">
        <Pace label="Longest work" name="workMs" value={speeds.workMs} />
        <Pace label="Longest vacation" name="vacationMs" value={speeds.vacationMs} />
      </div>
    </>
  );
}

const { url } = (await (await fetch('./config.json')).json()) as { url: string };
const client = new ConvexReactClient(url);
createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <ConvexProvider client={client}>
      <NorthPole />
    </ConvexProvider>
  </StrictMode>,
);
