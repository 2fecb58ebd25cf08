import { describe, expect, it } from 'vitest';
import { Contention, SERIAL_MS } from './contention.js';

describe('contention', () => {
  it('queues a function whose first attempts keep conflicting, for a while', () => {
    const contention = new Contention();
    let conflicts = 0;
    while (!contention.serial('counter:bump', 0)) {
      contention.record('counter:bump', true, 0);
      conflicts++;
    }
    expect(conflicts).toBe(11);
    expect(contention.serial('counter:bump', SERIAL_MS - 1)).toBe(true);
    expect(contention.serial('other:fn', 0)).toBe(false);
    // The window ends: side by side again, and a few conflicts do not send it back at once.
    expect(contention.serial('counter:bump', SERIAL_MS)).toBe(false);
    conflicts = 0;
    while (!contention.serial('counter:bump', SERIAL_MS)) {
      contention.record('counter:bump', true, SERIAL_MS);
      conflicts++;
    }
    expect(conflicts).toBe(7);
  });

  it('never queues a busy function that conflicts now and then', () => {
    const contention = new Contention();
    // One conflict in four, and even five in a row once.
    for (let i = 0; i < 10_000; i++) {
      contention.record('orders:place', i % 4 === 0 || (i >= 5000 && i < 5005), i);
      expect(contention.serial('orders:place', i)).toBe(false);
    }
  });
});
