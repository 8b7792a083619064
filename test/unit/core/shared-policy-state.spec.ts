import { describe, expect, it } from 'vitest';
import { EventRecorder, FakeClock, seededRandom } from '../../../lib/testing/index.js';
import { CircuitOpenError, ResilienceConfigError } from '../../../lib/core/errors.js';
import { rootContext, type PolicyEnvironment } from '../../../lib/core/policy.js';
import { PolicyRegistry } from '../../../lib/core/policy-registry.js';
import type { SharedBreakerOutcome, SharedBreakerState, SharedPolicyState } from '../../../lib/core/shared-policy-state.js';

/** A backend in memory whose answers the test controls: `down` makes every call fail, `hang` never answer. */
class ScriptedBackend implements SharedPolicyState {
  readonly maxWait = 30;
  readonly flushInterval = 10;
  readonly recoveryInterval = 200;
  down = false;
  hang = false;
  state: SharedBreakerState = { generation: 100, state: 'closed', remainingMs: 0, opens: 0 };
  readonly batches: SharedBreakerOutcome[][] = [];
  push: (state: SharedBreakerState) => void = () => undefined;
  granted = true;
  deposited = 0;

  private answer<T>(value: () => T): Promise<T> {
    if (this.hang) return new Promise(() => undefined);
    return this.down ? Promise.reject(new Error('connection refused')) : Promise.resolve(value());
  }

  circuitBreaker(_key: string, _settings: unknown, onChange: (state: SharedBreakerState) => void) {
    this.push = onChange;
    return {
      record: (outcomes: readonly SharedBreakerOutcome[]) => this.answer(() => (this.batches.push([...outcomes]), this.state)),
      read: () => this.answer(() => this.state),
      reset: () => this.answer(() => (this.state = { generation: this.state.generation + 1, state: 'closed', remainingMs: 0, opens: 0 })),
      release: () => undefined,
    };
  }

  retryBudget() {
    return {
      deposit: (calls: number) => this.answer(() => void (this.deposited += calls)),
      acquire: (calls: number) => this.answer(() => ((this.deposited += calls), this.granted)),
    };
  }

  ping(): Promise<void> {
    return this.answer(() => undefined);
  }
}

function setUp() {
  const clock = new FakeClock();
  const events = new EventRecorder();
  const env: PolicyEnvironment = { clock, random: seededRandom(1), events: events.sink };
  const backend = new ScriptedBackend();
  const registry = new PolicyRegistry(env, { sharedState: backend });
  return { clock, events, backend, registry };
}

const fail = () => Promise.reject(new Error('down'));
const ok = () => Promise.resolve('ok');
const consecutive = (threshold: number) => ({ strategy: { type: 'consecutive', threshold } as const, breakDuration: 1_000, shared: true });

describe('shared policy state (core seam, scripted backend)', () => {
  it('asking for shared state without a backend fails with a sentence naming the fix', () => {
    const registry = new PolicyRegistry({ clock: new FakeClock(), random: seededRandom(1), events: () => undefined });
    expect(() => registry.circuitBreaker('payments', { shared: true })).toThrow(ResilienceConfigError);
    expect(() => registry.circuitBreaker('payments', { shared: true })).toThrow(
      `The circuit breaker "payments" sets circuitBreaker.shared: true, but no shared state backend is configured. Pass one to ResilienceModule.forRoot({ sharedState: new RedisPolicyState({ client }) }) (from 'nest-resilience/redis'), or remove circuitBreaker.shared.`,
    );
    expect(() => registry.retryPermits('payments', { shared: true })).toThrow('sets retry.budget.shared: true');
    // without shared, nothing changes
    expect(registry.circuitBreaker('other').shared).toBe(false);
  });

  it('outcomes go in one batch per flushInterval, stamped with the adopted generation; the shared window decides, not the local one', async () => {
    const { clock, backend, registry } = setUp();
    const breaker = registry.circuitBreaker('dep', consecutive(2));
    await clock.flush(); // the first read
    for (let i = 0; i < 3; i++) await breaker.execute(fail, rootContext('dep')).catch(() => undefined);
    expect(breaker.state).toBe('closed'); // 3 in a row locally, but the backend said nothing yet
    expect(backend.batches).toEqual([]);
    await clock.advance(10);
    expect(backend.batches).toEqual([Array.from({ length: 3 }, () => ({ generation: 100, failure: true, slow: false, probe: false }))]);
  });

  it('adopts an open from the backend for the remaining break, on its own clock, then probes per instance', async () => {
    const { clock, events, backend, registry } = setUp();
    const breaker = registry.circuitBreaker('dep', consecutive(5));
    await clock.flush();
    backend.push({ generation: 101, state: 'open', remainingMs: 400, reason: 'consecutive', opens: 1 });
    expect(breaker.state).toBe('open');
    await expect(breaker.execute(ok, rootContext('dep'))).rejects.toMatchObject({ retryAfterMs: 400 });
    expect(events.named('breaker_opened')).toMatchObject([{ detail: 'consecutive', delayMs: 400 }]);
    // an older answer (a batch sent before the open) changes nothing
    backend.push({ generation: 100, state: 'closed', remainingMs: 0, opens: 0 });
    expect(breaker.state).toBe('open');
    await clock.advance(400);
    backend.state = { generation: 102, state: 'closed', remainingMs: 0, opens: 0 };
    await breaker.execute(ok, rootContext('dep'));
    expect(breaker.state).toBe('closed');
    // the probe went at once, flagged, stamped with the generation it probed
    expect(backend.batches.at(-1)).toEqual([{ generation: 101, failure: false, slow: false, probe: true }]);
  });

  it('an open pushed before any answer, once this instance sent its own outcomes, is breaker_opened: it saw the open happen', async () => {
    const { clock, events, backend, registry } = setUp();
    // a busy loop: neither the start-up read nor the batch has answered when the other instance's push arrives
    backend.hang = true;
    const breaker = registry.circuitBreaker('dep', consecutive(4));
    for (let i = 0; i < 2; i++) await breaker.execute(fail, rootContext('dep')).catch(() => undefined);
    await clock.advance(10); // the batch goes out (and hangs)
    backend.push({ generation: 101, state: 'open', remainingMs: 400, reason: 'consecutive', opens: 1 });
    expect(breaker.state).toBe('open');
    expect(events.named('breaker_state_loaded')).toEqual([]);
    expect(events.named('breaker_opened')).toMatchObject([{ policy: 'dep', from: 'closed', detail: 'consecutive', delayMs: 400 }]);
  });

  it('an open read at start-up is breaker_state_loaded, not breaker_opened: no alert fires on a deploy during (or just after) a break', async () => {
    const { clock, events, backend, registry } = setUp();
    // another instance opened the breaker before this one started
    backend.state = { generation: 101, state: 'open', remainingMs: 400, reason: 'consecutive', opens: 1 };
    const breaker = registry.circuitBreaker('dep', consecutive(5));
    await clock.flush(); // the start-up read
    expect(breaker.state).toBe('open');
    await expect(breaker.execute(ok, rootContext('dep'))).rejects.toMatchObject({ retryAfterMs: 400 });
    expect(events.named('breaker_opened')).toEqual([]);
    expect(events.named('breaker_state_loaded')).toMatchObject([{ policy: 'dep', from: 'closed', detail: 'consecutive', delayMs: 400 }]);
    // a transition after start-up is one
    await clock.advance(400);
    backend.state = { generation: 102, state: 'closed', remainingMs: 0, opens: 0 };
    await breaker.execute(ok, rootContext('dep'));
    backend.push({ generation: 103, state: 'open', remainingMs: 1_000, reason: 'consecutive', opens: 1 });
    expect(events.named('breaker_opened')).toMatchObject([{ policy: 'dep', delayMs: 1_000 }]);

    // a break that ended before anyone probed it (a stale state, remainingMs 0) is no open at all
    const { clock: clock2, events: events2, backend: stale, registry: registry2 } = setUp();
    stale.state = { generation: 101, state: 'open', remainingMs: 0, reason: 'consecutive', opens: 1 };
    const restarted = registry2.circuitBreaker('dep', consecutive(5));
    await clock2.flush();
    expect(events2.named('breaker_opened')).toEqual([]);
    stale.state = { generation: 102, state: 'closed', remainingMs: 0, opens: 0 };
    await expect(restarted.execute(ok, rootContext('dep'))).resolves.toBe('ok');
  });

  it('a close pushed by another instance closes this one', async () => {
    const { clock, events, backend, registry } = setUp();
    const breaker = registry.circuitBreaker('dep', consecutive(5));
    await clock.flush();
    backend.push({ generation: 101, state: 'open', remainingMs: 5_000, reason: 'failure_rate', opens: 1 });
    backend.push({ generation: 102, state: 'closed', remainingMs: 0, opens: 0 });
    expect(breaker.state).toBe('closed');
    expect(events.named('breaker_closed')).toHaveLength(1);
  });

  it('backend down: the in-process window decides, one event per transition, and shared state decides again after a ping', async () => {
    const { clock, events, backend, registry } = setUp();
    const breaker = registry.circuitBreaker('dep', consecutive(3));
    await clock.flush();
    backend.down = true;
    await breaker.execute(fail, rootContext('dep')).catch(() => undefined);
    await clock.advance(10); // its batch fails: in-process from now on
    expect(events.named('shared_state_unavailable')).toMatchObject([{ policy: 'dep', cause: 'Error: connection refused' }]);
    await breaker.execute(fail, rootContext('dep')).catch(() => undefined);
    await breaker.execute(fail, rootContext('dep')).catch(() => undefined);
    expect(breaker.state).toBe('open');
    await expect(breaker.execute(ok, rootContext('dep'))).rejects.toBeInstanceOf(CircuitOpenError);
    await clock.advance(400);
    expect(events.named('shared_state_unavailable')).toHaveLength(1);
    expect(events.named('shared_state_recovered')).toHaveLength(0);
    backend.down = false;
    await clock.advance(200);
    expect(events.named('shared_state_recovered')).toHaveLength(1);
    // the open decided alone lasts its break even though the backend says closed
    backend.push({ generation: 105, state: 'closed', remainingMs: 0, opens: 0 });
    expect(breaker.state).toBe('open');
  });

  it('a backend slower than maxWait: each retry permit falls back to the in-process budget after exactly maxWait, and three slow answers in a row count as down', async () => {
    const { clock, events, backend, registry } = setUp();
    const permits = registry.retryPermits('dep', { ratio: 0, window: 1_000, minRetriesPerSecond: 1, shared: true });
    permits.recordCall();
    backend.hang = true;
    let answer: boolean | undefined;
    void (permits.tryAcquireRetry() as Promise<boolean>).then((granted) => (answer = granted));
    await clock.advance(29);
    expect(answer).toBeUndefined();
    await clock.advance(1);
    expect(answer).toBe(true); // the in-process floor: 1 per second of window
    expect(events.named('shared_state_unavailable')).toHaveLength(0); // one late answer is not an outage
    for (let slow = 2; slow <= 3; slow++) {
      const late = permits.tryAcquireRetry() as Promise<boolean>;
      await clock.advance(30);
      await expect(late).resolves.toBe(false); // the in-process budget: its floor is spent
      expect(events.named('shared_state_unavailable')).toHaveLength(slow === 3 ? 1 : 0);
    }
    expect(permits.tryAcquireRetry()).toBe(false); // no round trip while down: answered at once
  });

  it('calls late together (one stall of the event loop or the backend) count as one slow answer, not as an outage', async () => {
    const { clock, events, backend, registry } = setUp();
    const permits = registry.retryPermits('dep', { shared: true });
    permits.recordCall();
    backend.hang = true;
    const together = Array.from({ length: 5 }, () => permits.tryAcquireRetry() as Promise<boolean>);
    await clock.advance(30);
    await Promise.all(together);
    expect(events.named('shared_state_unavailable')).toHaveLength(0); // five late answers, one stall
    // still hanging: each later call is a new slow answer; the third in a row counts as down
    for (let slow = 2; slow <= 3; slow++) {
      const late = permits.tryAcquireRetry() as Promise<boolean>;
      await clock.advance(30);
      await late;
      expect(events.named('shared_state_unavailable')).toHaveLength(slow === 3 ? 1 : 0);
    }
  });

  it('an answer in time between slow ones starts the count of slow answers again', async () => {
    const { clock, events, backend, registry } = setUp();
    const permits = registry.retryPermits('dep', { shared: true });
    permits.recordCall();
    for (const hang of [true, true, false, true, true]) {
      backend.hang = hang;
      const answer = permits.tryAcquireRetry() as Promise<boolean>;
      await clock.advance(30);
      await answer;
    }
    expect(events.named('shared_state_unavailable')).toHaveLength(0);
  });

  it('calls are deposited in batches, and the ones not deposited yet go with the next permit request', async () => {
    const { clock, backend, registry } = setUp();
    const permits = registry.retryPermits('dep', { shared: true });
    permits.recordCall();
    permits.recordCall();
    await clock.advance(10);
    expect(backend.deposited).toBe(2);
    permits.recordCall();
    backend.granted = false;
    const answer = permits.tryAcquireRetry();
    expect(backend.deposited).toBe(3);
    await expect(answer).resolves.toBe(false); // the backend's answer, not the in-process budget's
    await clock.advance(10);
    expect(backend.deposited).toBe(3); // nothing deposited twice
  });
});
