import { cronJobs } from 'convex/server';
import { api } from './_generated/api';

const crons = cronJobs();
crons.hourly('hourly task', { minuteUTC: 0 }, api.tasks.add, { title: 'hourly', priority: 0 });
export default crons;
