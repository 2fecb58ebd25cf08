// A 2023-era module: functions built from plain handlers, without validators.
import { mutation, query } from './_generated/server';

export const addMessage = mutation(async ({ db }, { body }: { body: string }) => {
  return await db.insert('messages', { channel: 'legacy', author: 'old', body });
});

export default query(async ({ db }) => {
  return (await db.query('messages').collect())
    .filter((m) => m.channel === 'legacy')
    .map((m) => m.body);
});
