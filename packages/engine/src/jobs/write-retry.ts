/**
 * A write transaction of Sleigh's own (outside any mutation: from an action, or a runner), run
 * again when it lost a serialization race, as mutations are.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { StorageError, type Store, type WriteTransaction } from '@sleigh/storage';

const MAX_ATTEMPTS = 20;

export async function writeWithRetry<T>(
  store: Store,
  run: (tx: WriteTransaction) => Promise<T>,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return (await store.write(run)).value;
    } catch (error) {
      if (!StorageError.is(error) || !error.retryable || attempt >= MAX_ATTEMPTS) throw error;
      await sleep(Math.random() * Math.min(50, attempt * 5));
    }
  }
}
