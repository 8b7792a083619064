import { setTimeout as sleep } from 'node:timers/promises';
import { Controller, Inject, Injectable, type INestApplicationContext } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { CircuitBreaker, Fallback, ResilienceEvents, Retryable, Timeout, type ResilienceEvent } from 'nest-resilience';
import { beforeEach, expect, it } from 'vitest';
import { fetchUpstream } from '../http/support.js';

/** What the handlers of a context test did: runs per name (a handler, a handler and key), and the work they saw aborted. */
@Injectable()
export class Ledger {
  readonly runs = new Map<string, number>();
  readonly aborted: string[] = [];
  /** What the handlers changed, in order (`charge:p-1`, an order id, …). */
  readonly effects: string[] = [];

  /** Counts one run of `name`; returns how many runs it has had. */
  run(name: string): number {
    const count = (this.runs.get(name) ?? 0) + 1;
    this.runs.set(name, count);
    return count;
  }

  runsOf(name: string): number {
    return this.runs.get(name) ?? 0;
  }
}

/** The loopback dependency of the context tests: 503 on /down, 503 + Retry-After: 2 on /busy, 200 elsewhere. */
export const dependencyScript = (path: string) =>
  path === '/down' ? { status: 503 } : path === '/busy' ? { status: 503, headers: { 'retry-after': '2' } } : { status: 200, body: 'ok' };

/** Injection token of the loopback dependency's URL in the context tests. */
export const UPSTREAM_URL = Symbol('UPSTREAM_URL');

/**
 * The request-response handlers every microservice transport is tested with: a dependency that is
 * down (retried), a handler that ignores its deadline, a breaker that opens at the first failure,
 * a fallback once the retries are spent. Runs are counted in the {@link Ledger} under the pattern.
 */
@Controller()
export class QuotesController {
  constructor(
    @Inject(UPSTREAM_URL) private readonly upstream: string,
    private readonly ledger: Ledger,
  ) {}

  @MessagePattern('quote.flaky')
  @Retryable({ maxAttempts: 3, backoff: { type: 'constant', delay: 10 } })
  async flakyQuote(@Payload() _data: unknown): Promise<unknown> {
    this.ledger.run('quote.flaky');
    return fetchUpstream(`${this.upstream}/down`);
  }

  @MessagePattern('quote.slow')
  @Timeout(200)
  async slowQuote(@Payload() _data: unknown): Promise<unknown> {
    this.ledger.run('quote.slow');
    // ignores the signal on purpose: the caller must still get its answer at the deadline
    await sleep(2_000);
    return { late: true };
  }

  @MessagePattern('quote.fragile')
  @CircuitBreaker({ strategy: { type: 'consecutive', threshold: 1 }, breakDuration: 60_000 })
  async fragileQuote(@Payload() _data: unknown): Promise<unknown> {
    this.ledger.run('quote.fragile');
    return fetchUpstream(`${this.upstream}/busy`);
  }

  @MessagePattern('quote.degraded')
  @Fallback(() => ({ degraded: true }))
  @Retryable({ maxAttempts: 2, backoff: { type: 'constant', delay: 10 } })
  async degradedQuote(@Payload() _data: unknown): Promise<unknown> {
    this.ledger.run('quote.degraded');
    return fetchUpstream(`${this.upstream}/down`);
  }
}

/** The error a `ClientProxy` caller receives: the error object the server sent. */
export async function errorOf(call: Promise<unknown>): Promise<Record<string, unknown>> {
  try {
    const value = await call;
    throw new Error(`expected an error, got ${JSON.stringify(value)}`);
  } catch (error) {
    return error as Record<string, unknown>;
  }
}

/**
 * The typed errors of {@link QuotesController} as its caller sees them, the same on every
 * transport: registers one `it` per decorator inside the caller's `describe`. `get` returns the
 * running transport's `send` and ledger (read when the tests run, after `beforeAll`).
 */
export function itAnswersQuotesWithTypedErrors(get: () => { send(pattern: string, data: unknown): Promise<unknown>; ledger: Ledger }): void {
  it('@Timeout answers the caller at the deadline with code timeout, even when the handler ignores the signal', async () => {
    const started = Date.now();
    const error = await errorOf(get().send('quote.slow', {}));
    const elapsed = Date.now() - started;
    expect(error).toMatchObject({ status: 503, code: 'timeout', detail: expect.any(String) });
    expect(elapsed).toBeGreaterThanOrEqual(190);
    expect(elapsed).toBeLessThan(1_800);
  });

  it('an open @CircuitBreaker refuses without calling the handler: code circuit_open with retryAfterMs', async () => {
    const { send, ledger } = get();
    const tripping = await errorOf(send('quote.fragile', {}));
    expect(tripping).toMatchObject({ status: 503, code: 'upstream_unavailable', retryAfterMs: 2000 });
    const refused = await errorOf(send('quote.fragile', {}));
    expect(refused).toMatchObject({ status: 503, code: 'circuit_open', retryAfterMs: expect.any(Number) });
    expect(refused.retryAfterMs as number).toBeGreaterThan(50_000);
    expect(ledger.runsOf('quote.fragile')).toBe(1);
  });

  it('@Fallback answers the caller with the fallback value once the retries are spent', async () => {
    const { send, ledger } = get();
    await expect(send('quote.degraded', {})).resolves.toEqual({ degraded: true });
    expect(ledger.runsOf('quote.degraded')).toBe(2);
  });
}

/**
 * A decorated service method called by a handler of the context under test (a resolver, a
 * gateway): its breaker opens on the dependency's first 503 + Retry-After, so the next call is
 * refused with `circuit_open`, which the context must render for its caller.
 */
@Injectable()
export class GuardedDependency {
  constructor(@Inject(UPSTREAM_URL) private readonly upstream: string) {}

  @CircuitBreaker({ strategy: { type: 'consecutive', threshold: 1 }, breakDuration: 60_000 })
  async call(): Promise<unknown> {
    return fetchUpstream(`${this.upstream}/busy`);
  }
}

/**
 * The resilience events of the app a describe block tests, emptied before each of its tests. Call
 * it in the describe body; `listen(app)` once the app is built.
 */
export function eventLog(): { readonly events: ResilienceEvent[]; listen(app: INestApplicationContext): void } {
  const events: ResilienceEvent[] = [];
  beforeEach(() => {
    events.length = 0;
  });
  return { events, listen: (app) => void app.get(ResilienceEvents).subscribe((event) => events.push(event)) };
}

/** Closes what a test started, in the order given (clients, then the app, then its dependency), skipping what never started. */
export async function closeAll(...resources: readonly ({ close(): unknown } | undefined)[]): Promise<void> {
  for (const resource of resources) await resource?.close();
}
