/**
 * A scraper that must go easy on someone else's API: every city is its own job in `scrapePool`,
 * which runs one at a time however many are queued (and never in the way of the emails).
 */
import { type WorkId } from '@sleigh/workpool';
import { v } from 'convex/values';
import { internal } from './_generated/api';
import { internalAction, internalMutation, mutation, query } from './_generated/server';
import { scrapePool } from './pools';

export const ALL_CITIES = [
  'Reykjavik',
  'Oslo',
  'Helsinki',
  'Tallinn',
  'Edinburgh',
  'Montreal',
  'Anchorage',
  'Rovaniemi',
];

/** Queues one scrape per city; resolves with the jobs' ids, in the order of the cities. */
export const downloadLatestWeather = mutation({
  args: { cities: v.optional(v.array(v.string())) },
  handler: async (ctx, { cities }): Promise<WorkId[]> =>
    // The batch form enqueues them all in one call; a loop of enqueueAction does the same.
    await scrapePool.enqueueActionBatch(
      ctx,
      internal.weather.scrape,
      (cities ?? ALL_CITIES).map((city) => ({ city })),
      { name: 'scrape weather' },
    ),
});

/** "Scrapes" a city: a slow request, then a made-up but stable temperature, stored. */
export const scrape = internalAction({
  args: { city: v.string() },
  handler: async (ctx, { city }): Promise<number> => {
    await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 150));
    const temperatureC = fakeTemperature(city);
    await ctx.runMutation(internal.weather.store, { city, temperatureC });
    // The return value is kept as the job's result (see `jobs.jobStatus`).
    return temperatureC;
  },
});

/** Between -25 and 14 °C, the same for a city every time. */
function fakeTemperature(city: string): number {
  let hash = 0;
  for (const char of city) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  return (hash % 40) - 25;
}

export const store = internalMutation({
  args: { city: v.string(), temperatureC: v.number() },
  handler: async (ctx, { city, temperatureC }) => {
    const existing = await ctx.db
      .query('weather')
      .withIndex('by_city', (q) => q.eq('city', city))
      .unique();
    const fetchedAt = Date.now();
    if (existing === null) await ctx.db.insert('weather', { city, temperatureC, fetchedAt });
    else await ctx.db.patch(existing._id, { temperatureC, fetchedAt });
  },
});

export const list = query({
  args: {},
  handler: async (ctx) =>
    (await ctx.db.query('weather').collect())
      .map(({ city, temperatureC, fetchedAt }) => ({ city, temperatureC, fetchedAt }))
      .sort((a, b) => a.city.localeCompare(b.city)),
});
