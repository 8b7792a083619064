import 'reflect-metadata';
import { setTimeout as sleep } from 'node:timers/promises';
import { Injectable, type INestApplicationContext } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Idempotent, ResilienceEvents, ResilienceModule, Retryable, type ResilienceEvent } from 'nest-resilience';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

interface Charge {
  readonly paymentId: string;
  readonly amount: number;
  readonly holdMs?: number;
  readonly crash?: boolean;
}

/** A service called from a worker or a script, no HTTP anywhere: @Idempotent({ key }) reads the key from its arguments. */
@Injectable()
class PaymentsService {
  readonly runs = new Map<string, number>();

  @Idempotent({ key: (charge: Charge) => charge.paymentId })
  async charge(charge: Charge): Promise<{ paymentId: string; n: number }> {
    const n = (this.runs.get(charge.paymentId) ?? 0) + 1;
    this.runs.set(charge.paymentId, n);
    await sleep(charge.holdMs ?? 5);
    if (charge.crash) throw new Error('the provider timed out');
    return { paymentId: charge.paymentId, n };
  }

  /** Key from the second argument, with retries inside the idempotent call. */
  @Idempotent({ key: (_tenant: string, requestId: string) => requestId })
  @Retryable({ maxAttempts: 3, backoff: { type: 'constant', delay: 1 } })
  async refund(tenant: string, requestId: string): Promise<string> {
    const n = (this.runs.get(requestId) ?? 0) + 1;
    this.runs.set(requestId, n);
    if (n < 2) throw Object.assign(new Error('503'), { status: 503 });
    return `${tenant}:${requestId}:${n}`;
  }
}

describe('@Idempotent({ key: (...args) => … }) on a provider method (no HTTP)', () => {
  let app: INestApplicationContext;
  let payments: PaymentsService;
  const events: ResilienceEvent[] = [];

  beforeAll(async () => {
    app = await Test.createTestingModule({ imports: [ResilienceModule.forRoot()], providers: [PaymentsService] }).compile();
    await app.init();
    payments = app.get(PaymentsService);
    app.get(ResilienceEvents).subscribe((event) => events.push(event));
  });

  afterAll(() => app?.close());

  it('a second call with the same key returns the stored value without running the method', async () => {
    const first = await payments.charge({ paymentId: 'p-1', amount: 10 });
    const second = await payments.charge({ paymentId: 'p-1', amount: 10 });
    expect(first).toEqual({ paymentId: 'p-1', n: 1 });
    expect(second).toEqual(first);
    expect(payments.runs.get('p-1')).toBe(1);
    expect(events.find((event) => event.event === 'idempotency_replayed')).toMatchObject({ contextType: 'method', operation: 'PaymentsService.charge' });
  });

  it('concurrent calls with one key run the method once; the others wait for its value', async () => {
    const results = await Promise.all([1, 2, 3, 4].map(() => payments.charge({ paymentId: 'p-2', amount: 5, holdMs: 150 })));
    expect(results).toEqual(Array(4).fill({ paymentId: 'p-2', n: 1 }));
    expect(payments.runs.get('p-2')).toBe(1);
  });

  it('the same key with other arguments is refused (idempotency_key_reused, 422) without running the method', async () => {
    await payments.charge({ paymentId: 'p-3', amount: 1 });
    await expect(payments.charge({ paymentId: 'p-3', amount: 2 })).rejects.toMatchObject({ problem: { code: 'idempotency_key_reused', status: 422 } });
    expect(payments.runs.get('p-3')).toBe(1);
  });

  it('a failure releases the key: the error reaches the caller as thrown, and the next call runs again', async () => {
    await expect(payments.charge({ paymentId: 'p-4', amount: 1, crash: true })).rejects.toThrow('the provider timed out');
    expect(await payments.charge({ paymentId: 'p-4', amount: 1 })).toEqual({ paymentId: 'p-4', n: 2 });
    expect(await payments.charge({ paymentId: 'p-4', amount: 1 })).toEqual({ paymentId: 'p-4', n: 2 });
  });

  it('the key function gets every argument; the method retries inside the one idempotent execution', async () => {
    expect(await payments.refund('acme', 'r-1')).toBe('acme:r-1:2');
    expect(await payments.refund('acme', 'r-1')).toBe('acme:r-1:2');
    expect(payments.runs.get('r-1')).toBe(2);
  });
});
