import { setTimeout as sleep } from 'node:timers/promises';
import { idempotent, IdempotencyKeyReusedError, InMemoryIdempotencyStore, IdempotentReplayedError } from 'nest-resilience/core';
import { describe, expect, it } from 'vitest';

interface Order {
  readonly paymentId: string;
  readonly amount: number;
  readonly holdMs?: number;
}

/** A function with a visible effect: how often it ran per payment. */
function charger() {
  const runs = new Map<string, number>();
  const charge = async (order: Order): Promise<{ paymentId: string; run: number }> => {
    const run = (runs.get(order.paymentId) ?? 0) + 1;
    runs.set(order.paymentId, run);
    await sleep(order.holdMs ?? 5);
    if (order.amount < 0) throw new Error('the provider refused');
    return { paymentId: order.paymentId, run };
  };
  return { charge, runs };
}

describe('idempotent(fn, { store, key }): exactly-once calls without Nest', () => {
  it('a second call with the key returns the stored result without running fn', async () => {
    const { charge, runs } = charger();
    const chargeOnce = idempotent(charge, { store: new InMemoryIdempotencyStore(), key: (order) => order.paymentId });
    expect(await chargeOnce({ paymentId: 'p-1', amount: 5 })).toEqual({ paymentId: 'p-1', run: 1 });
    expect(await chargeOnce({ paymentId: 'p-1', amount: 5 })).toEqual({ paymentId: 'p-1', run: 1 });
    expect(runs.get('p-1')).toBe(1);
  });

  it('concurrent calls with one key run fn once; the others wait for its result', async () => {
    const { charge, runs } = charger();
    const chargeOnce = idempotent(charge, { store: new InMemoryIdempotencyStore(), key: (order) => order.paymentId });
    const results = await Promise.all([1, 2, 3, 4, 5].map(() => chargeOnce({ paymentId: 'p-2', amount: 5, holdMs: 100 })));
    expect(results).toEqual(Array(5).fill({ paymentId: 'p-2', run: 1 }));
    expect(runs.get('p-2')).toBe(1);
  });

  it('the key with other arguments is refused (422 idempotency_key_reused) without running fn', async () => {
    const { charge, runs } = charger();
    const chargeOnce = idempotent(charge, { store: new InMemoryIdempotencyStore(), key: (order) => order.paymentId });
    await chargeOnce({ paymentId: 'p-3', amount: 5 });
    const refused = await chargeOnce({ paymentId: 'p-3', amount: 6 }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(IdempotencyKeyReusedError);
    expect(refused).toMatchObject({ code: 'idempotency_key_reused', status: 422 });
    expect(runs.get('p-3')).toBe(1);
  });

  it('a failure releases the key: the error reaches the caller, the next call runs fn again', async () => {
    const { charge, runs } = charger();
    const chargeOnce = idempotent(charge, { store: new InMemoryIdempotencyStore(), key: (order) => order.paymentId });
    await expect(chargeOnce({ paymentId: 'p-4', amount: -1 })).rejects.toThrow('the provider refused');
    await expect(chargeOnce({ paymentId: 'p-4', amount: -1 })).rejects.toThrow('the provider refused');
    expect(runs.get('p-4')).toBe(2);
  });

  it('an error with a 4xx status is stored and thrown again as IdempotentReplayedError', async () => {
    let runs = 0;
    const refuse = idempotent(
      async (_id: string) => {
        runs++;
        throw Object.assign(new Error('card declined'), { getStatus: () => 402, getResponse: () => ({ detail: 'card declined' }) });
      },
      { store: new InMemoryIdempotencyStore(), key: (id) => id },
    );
    await expect(refuse('c-1')).rejects.toThrow('card declined');
    const again = await refuse('c-1').catch((error: unknown) => error);
    expect(again).toBeInstanceOf(IdempotentReplayedError);
    expect(again).toMatchObject({ status: 402, body: { detail: 'card declined' } });
    expect(runs).toBe(1);
  });

  it('a call without a key is refused unless required: false', async () => {
    const { charge } = charger();
    const store = new InMemoryIdempotencyStore();
    await expect(idempotent(charge, { store, key: () => undefined })({ paymentId: 'x', amount: 1 })).rejects.toMatchObject({ code: 'idempotency_key_missing' });
    expect(await idempotent(charge, { store, key: () => undefined, required: false })({ paymentId: 'x', amount: 1 })).toEqual({ paymentId: 'x', run: 1 });
  });
});
