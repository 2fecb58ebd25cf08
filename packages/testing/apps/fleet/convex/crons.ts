import { cronJobs } from 'convex/server';
import { internal } from './_generated/api';

const crons = cronJobs();
// Once a second, whichever servers are up: the fleet must run each tick once.
crons.interval('tick', { seconds: 1 }, internal.fleet.tick, {});
export default crons;
