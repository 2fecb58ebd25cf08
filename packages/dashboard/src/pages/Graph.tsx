import { Link, useParams } from 'react-router';
import { GraphSection } from './Job';

/** `/jobs/:id/graph`: the dependency graph of a job on a page of its own. */
export function GraphPage() {
  const { id = '' } = useParams();
  return (
    <section data-testid="page-job" className="graph-page">
      <title>Graph · Sleigh</title>
      <nav aria-label="Breadcrumb" className="breadcrumb">
        <Link to="/pools">Pools</Link> /{' '}
        <Link to={`/jobs/${encodeURIComponent(id)}`}>Job {id}</Link> / Graph
      </nav>
      <GraphSection id={id} title="Graph" />
    </section>
  );
}
