import { Link } from 'react-router';
import { api, JOB_STATES, type PoolInfo } from '../api';
import { Badge, LiveView, PageHeader } from '../components/ui';
import { formatCount } from '../format';
import { useLive } from '../hooks';

/** `/pools`: one card per workpool with its jobs by state and the parallelism in use. */
export function PoolsPage() {
  const pools = useLive(api.pools.pools, {});
  return (
    <section data-testid="page-pools">
      <title>Pools · Sleigh</title>
      <PageHeader title="Pools" />
      <LiveView live={pools} what="pools">
        {(list) =>
          list.length === 0 ? (
            <p className="muted">No workpools yet (a pool appears when it first enqueues a job).</p>
          ) : (
            <div className="cards">
              {[...list]
                .sort((a, b) => a.name.localeCompare(b.name))
                .map((pool) => (
                  <PoolCard key={pool.name} pool={pool} link />
                ))}
            </div>
          )
        }
      </LiveView>
    </section>
  );
}

/** A pool's counts by state and its parallelism in use (executing / maxParallelism). */
export function PoolCard({ pool, link = false }: { pool: PoolInfo; link?: boolean }) {
  const running = pool.inUse;
  const headingId = `pool-${pool.name}`;
  return (
    <article
      className="card pool-card"
      aria-labelledby={headingId}
      data-testid="pool-card"
      data-pool={pool.name}
    >
      <h2 id={headingId}>
        {link ? <Link to={`/pools/${encodeURIComponent(pool.name)}`}>{pool.name}</Link> : pool.name}
        {pool.paused && (
          <>
            {' '}
            <Badge tone="warn" title="None of its jobs start until it is resumed">
              paused
            </Badge>
          </>
        )}
      </h2>
      <div className="parallelism">
        <span>
          Parallelism in use:{' '}
          <strong data-testid="parallelism">
            {running} / {pool.maxParallelism}
          </strong>
        </span>
        <meter
          min={0}
          max={Math.max(pool.maxParallelism, 1)}
          value={Math.min(running, pool.maxParallelism)}
          aria-label={`Parallelism in use of ${pool.name}`}
        />
      </div>
      <dl className="counts">
        {JOB_STATES.map((state) => (
          <div key={state} className={`count count-${state}`} data-state={state}>
            <dt>{state}</dt>
            <dd>
              {link ? (
                <Link
                  to={`/pools/${encodeURIComponent(pool.name)}?state=${state}`}
                  aria-label={`${formatCount(pool.counts[state])} ${state} jobs in ${pool.name}`}
                >
                  {formatCount(pool.counts[state] ?? 0)}
                </Link>
              ) : (
                formatCount(pool.counts[state] ?? 0)
              )}
            </dd>
          </div>
        ))}
      </dl>
    </article>
  );
}
