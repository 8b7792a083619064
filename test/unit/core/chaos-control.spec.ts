import {
  ChaosControl,
  CircuitOpenError,
  createPipeline,
  InjectedFaultError,
  isChaosEvent,
  isInjectedFault,
  isTransientError,
  PolicyRegistry,
  RetriesExhaustedError,
  AttemptTimeoutError,
  UpstreamHttpError,
  type ChaosRuleInit,
  type ChaosSite,
  type PipelineSpec,
  type PolicyEnvironment,
} from 'nest-resilience/core';
import { EventRecorder, FakeClock, observe, seededRandom } from 'nest-resilience/testing';
import { describe, expect, it } from 'vitest';

// Runtime chaos rules (fault injection) in the one pipeline, on the fake clock with seeded randoms.

function setup(seed = 7) {
  const clock = new FakeClock();
  const recorder = new EventRecorder();
  const env: PolicyEnvironment = { clock, random: seededRandom(1), events: recorder.sink };
  const control = new ChaosControl({ clock, events: recorder.sink, random: seededRandom(seed), now: () => clock.now() });
  return { clock, recorder, env, control, registry: new PolicyRegistry(env) };
}

const site: ChaosSite = { policy: 'payments', route: 'POST /payments', method: 'PaymentsController.pay' };

/** How many of `calls` attempts a rule of `rate` failed, through a pipeline without other policies. */
async function failuresOf(rate: number, seed: number, calls = 10_000): Promise<number> {
  const { control, env, registry } = setup(seed);
  control.inject({ target: { policy: 'payments' }, fault: { kind: 'exception' }, rate });
  const pipeline = createPipeline({ key: 'payments', chaos: { control, site } }, env, registry);
  let failed = 0;
  for (let call = 0; call < calls; call++) {
    await pipeline.execute(async () => 'ok').catch((error: unknown) => {
      expect(error).toBeInstanceOf(InjectedFaultError);
      failed++;
    });
  }
  return failed;
}

describe('chaos rules at a rate', () => {
  it.each([0.05, 0.3, 0.5, 0.9])('inject into a share of 10k attempts within the binomial bounds of rate %s (seeded)', async (rate) => {
    const calls = 10_000;
    // 4.5 standard deviations: a fair draw leaves these bounds about once in 150 000 runs
    const margin = 4.5 * Math.sqrt(calls * rate * (1 - rate));
    for (const seed of [1, 2, 3]) {
      const failed = await failuresOf(rate, seed, calls);
      expect(failed).toBeGreaterThanOrEqual(calls * rate - margin);
      expect(failed).toBeLessThanOrEqual(calls * rate + margin);
    }
  });

  it('replays the same injections for the same seed, and others for another seed', async () => {
    const pattern = async (seed: number) => {
      const { control, env, registry } = setup(seed);
      control.inject({ target: { policy: 'payments' }, fault: { kind: 'exception' }, rate: 0.5 });
      const pipeline = createPipeline({ key: 'payments', chaos: { control, site } }, env, registry);
      const outcomes: string[] = [];
      for (let call = 0; call < 64; call++) outcomes.push(await pipeline.execute(async () => '.').catch(() => 'x'));
      return outcomes.join('');
    };
    expect(await pattern(11)).toBe(await pattern(11));
    expect(await pattern(11)).not.toBe(await pattern(12));
  });

  it('never injects at rate 0 and always at rate 1', async () => {
    expect(await failuresOf(0, 1, 500)).toBe(0);
    expect(await failuresOf(1, 1, 500)).toBe(500);
  });
});

describe('injected faults go through the real policies', () => {
  it('a retry retries an injected transient fault, and gives up with it when every attempt is injected', async () => {
    const { control, env, registry, recorder, clock } = setup();
    const spec: PipelineSpec = { key: 'payments', retry: { maxAttempts: 3, backoff: { type: 'constant', delay: 100 } }, chaos: { control, site } };
    const pipeline = createPipeline(spec, env, registry);
    control.inject({ id: 'always', target: { method: 'PaymentsController.pay' }, fault: { kind: 'exception' }, rate: 1 });
    let ran = 0;
    const call = observe(pipeline.execute(async () => ++ran));
    await clock.runAll();
    expect(call.error).toBeInstanceOf(RetriesExhaustedError);
    expect((call.error as RetriesExhaustedError).cause).toBeInstanceOf(InjectedFaultError);
    expect(ran).toBe(0);
    expect(recorder.named('fault_injected')).toHaveLength(3);
    expect(recorder.named('fault_injected').every((event) => event.chaos === true && event.detail === 'rule always')).toBe(true);
    const retries = recorder.named('retry');
    expect(retries).toHaveLength(2);
    // the retry of an injected fault is marked too (logs, spans, metrics: resilience.chaos=true)
    expect(retries.every((event) => isChaosEvent(event))).toBe(true);
    expect(isTransientError(new InjectedFaultError('r', 'p'))).toBe(true);
  });

  it("a rule at rate 0.5 is what the retry sees: the work succeeds once a draw leaves it alone", async () => {
    const { control, env, registry, clock } = setup(3);
    const pipeline = createPipeline({ key: 'payments', retry: { maxAttempts: 10, backoff: { type: 'constant', delay: 10 } }, chaos: { control, site } }, env, registry);
    control.inject({ target: { policy: 'payments' }, fault: { kind: 'exception' }, rate: 0.5 });
    let ran = 0;
    const call = observe(pipeline.execute(async () => ++ran));
    await clock.runAll();
    expect(call.value).toBe(1);
  });

  it('a breaker counts injected faults and opens; the user error a rule names is thrown as it is', async () => {
    const { control, env, registry, recorder } = setup();
    class PaymentProviderDown extends Error {}
    const pipeline = createPipeline({ key: 'payments', circuitBreaker: { strategy: { type: 'consecutive', threshold: 3 } }, chaos: { control, site } }, env, registry);
    control.inject({ target: { policy: 'payments' }, fault: { kind: 'exception', error: () => new PaymentProviderDown('down') }, rate: 1 });
    for (let call = 0; call < 3; call++) await expect(pipeline.execute(async () => 'ok')).rejects.toBeInstanceOf(PaymentProviderDown);
    await expect(pipeline.execute(async () => 'ok')).rejects.toBeInstanceOf(CircuitOpenError);
    expect(registry.findCircuitBreaker('payments')?.state).toBe('open');
    expect(recorder.named('breaker_opened')).toHaveLength(1);
    expect(recorder.named('fault_injected')[0]).toMatchObject({ outcome: 'exception', errorType: 'PaymentProviderDown' });
  });

  it('a fallback answers an injected fault', async () => {
    const { control, env, registry, clock } = setup();
    const pipeline = createPipeline({ key: 'payments', fallback: { handler: () => 'fallback' }, retry: { maxAttempts: 2, backoff: { type: 'constant', delay: 1 } }, chaos: { control, site } }, env, registry);
    control.inject({ target: { policy: 'payments' }, fault: { kind: 'exception' }, rate: 1 });
    const call = observe(pipeline.execute(async () => 'real'));
    await clock.runAll();
    expect(call.value).toBe('fallback');
  });

  it('injected latency runs inside the attempt: its timeout ends it before the work starts, and the retry runs again', async () => {
    const { control, env, registry, clock, recorder } = setup();
    const pipeline = createPipeline(
      { key: 'payments', timeout: { total: 10_000, attempt: 1_000 }, retry: { maxAttempts: 2, backoff: { type: 'constant', delay: 50 } }, chaos: { control, site } },
      env,
      registry,
    );
    control.inject({ target: { route: 'POST /payments' }, fault: { kind: 'latency', ms: 1_500 }, rate: 1 });
    let ran = 0;
    const call = observe(pipeline.execute(async () => ++ran));
    await clock.advance(999);
    expect(call.settled).toBe(false);
    await clock.advance(1);
    expect(recorder.named('attempt_timeout')).toHaveLength(1);
    await clock.runAll();
    expect(call.error).toBeInstanceOf(RetriesExhaustedError);
    expect((call.error as RetriesExhaustedError).cause).toBeInstanceOf(AttemptTimeoutError);
    expect(ran).toBe(0);
    expect(clock.pendingTimers).toBe(0);
    expect(recorder.named('fault_injected').map((event) => [event.outcome, event.delayMs])).toEqual([
      ['latency', 1_500],
      ['latency', 1_500],
    ]);
  });

  it('injected latency shorter than the timeout delays the work by exactly that much', async () => {
    const { control, env, registry, clock } = setup();
    const pipeline = createPipeline({ key: 'payments', timeout: { attempt: 2_000 }, chaos: { control, site } }, env, registry);
    control.inject({ target: { route: '/payments' }, fault: { kind: 'latency', ms: 700 }, rate: 1 });
    let startedAt = -1;
    const call = observe(pipeline.execute(async () => (startedAt = clock.now())));
    await clock.advance(699);
    expect(startedAt).toBe(-1);
    await clock.advance(1);
    expect(call.value).toBe(700);
  });

  it("an injected HTTP 503 with Retry-After is an UpstreamHttpError the retry waits for", async () => {
    const { control, env, registry, clock, recorder } = setup();
    const pipeline = createPipeline({ key: 'payments', retry: { maxAttempts: 2, backoff: { type: 'constant', delay: 10 } }, chaos: { control, site } }, env, registry);
    control.inject({ id: 'throttled', target: { policy: 'payments' }, fault: { kind: 'http', status: 503, headers: { 'Retry-After': '2' } }, rate: 1 });
    const call = observe(pipeline.execute(async () => 'ok'));
    await clock.advance(1_999);
    expect(recorder.named('fault_injected')).toHaveLength(1);
    expect(recorder.named('retry')[0]).toMatchObject({ delayMs: 2_000, status: 503 });
    // switched off while the retry waits: the second attempt is left alone
    control.switch('throttled', false);
    await clock.advance(1);
    expect(call.value).toBe('ok');
    const first = recorder.named('retry')[0]!.error as UpstreamHttpError;
    expect(first).toBeInstanceOf(UpstreamHttpError);
    expect(first.headers).toEqual({ 'retry-after': '2' });
    expect(isInjectedFault(first)).toBe(true);
  });
});

describe('switching rules at runtime', () => {
  it('applies a rule to the next attempt, only where its target matches, and stops when it is removed', async () => {
    const { control, env, registry } = setup();
    const payments = createPipeline({ key: 'payments', chaos: { control, site } }, env, registry);
    const other = createPipeline({ key: 'search', chaos: { control, site: { policy: 'search', route: 'GET /search' } } }, env, registry);
    await expect(payments.execute(async () => 'ok')).resolves.toBe('ok');
    const rule = control.inject({ target: { route: 'POST /payments' }, fault: { kind: 'exception' }, rate: 1 }, 'alice');
    expect(rule).toMatchObject({ id: 'chaos-1', enabled: true, injected: 0, updatedBy: 'alice' });
    await expect(payments.execute(async () => 'ok')).rejects.toBeInstanceOf(InjectedFaultError);
    await expect(other.execute(async () => 'ok')).resolves.toBe('ok');
    expect(control.get('chaos-1')?.injected).toBe(1);
    expect(control.switch('chaos-1', false).enabled).toBe(false);
    await expect(payments.execute(async () => 'ok')).resolves.toBe('ok');
    control.switch('chaos-1', true);
    await expect(payments.execute(async () => 'ok')).rejects.toBeInstanceOf(InjectedFaultError);
    expect(control.remove('chaos-1')).toBe(true);
    await expect(payments.execute(async () => 'ok')).resolves.toBe('ok');
    expect(control.rules()).toEqual([]);
  });

  it('matches by policy, route (with or without its method), method, HTTP client and origin', () => {
    const { control } = setup();
    const client: ChaosSite = { policy: 'http:model@http://model:8080', httpClient: 'model', origin: 'http://model:8080' };
    const cases: Array<[ChaosRuleInit['target'], ChaosSite, boolean]> = [
      [{ policy: 'payments' }, site, true],
      [{ route: 'post /payments' }, site, true],
      [{ route: '/payments' }, site, true],
      [{ route: 'GET /payments' }, site, false],
      [{ method: 'PaymentsController.pay' }, site, true],
      [{ method: 'PaymentsController.refund' }, site, false],
      [{ httpClient: 'model' }, client, true],
      [{ httpClient: 'model', origin: 'http://model:8080/v1' }, client, true],
      [{ httpClient: 'model', origin: 'http://other:8080' }, client, false],
      [{ httpClient: 'model' }, site, false],
      [{ policy: 'payments', route: 'POST /payments' }, site, true],
      [{ policy: 'payments', route: 'POST /refunds' }, site, false],
    ];
    for (const [target, where, expected] of cases) {
      control.clear();
      control.inject({ target, fault: { kind: 'latency', ms: 1 }, rate: 1 });
      expect([target, control.matching(where).length === 1]).toEqual([target, expected]);
    }
  });

  it("a route handler's pipeline reads the route per call: a rule naming a route injects only into calls of that route", async () => {
    const { control, env, registry } = setup();
    let route: string | undefined = 'GET /reports/:id';
    const pipeline = createPipeline({ key: 'ReportsController.get', chaos: { control, site: { policy: 'ReportsController.get', method: 'ReportsController.get' }, routeOf: () => route } }, env, registry);
    await pipeline.execute(async () => 'ok');
    // the route of the first call is remembered for the suggestions
    expect(control.sites().map((where) => where.route)).toContain('GET /reports/:id');
    control.inject({ target: { route: '/reports/:id' }, fault: { kind: 'exception' }, rate: 1 });
    await expect(pipeline.execute(async () => 'ok')).rejects.toBeInstanceOf(InjectedFaultError);
    route = 'GET /v2/reports/:id';
    await expect(pipeline.execute(async () => 'ok')).resolves.toBe('ok');
    // a pipeline that serves no route (a provider method) never matches a route rule
    const method = createPipeline({ key: 'ReportsService.find', chaos: { control, site: { policy: 'ReportsService.find', method: 'ReportsService.find' } } }, env, registry);
    route = 'GET /reports/:id';
    await expect(method.execute(async () => 'ok')).resolves.toBe('ok');
  });

  it('refuses rules that cannot work, naming the fix', () => {
    const { control } = setup();
    const fault = { kind: 'latency', ms: 10 } as const;
    expect(() => control.inject({ target: {}, fault, rate: 1 })).toThrow(/empty target, which would inject everywhere/);
    expect(() => control.inject({ target: { policy: 'p' }, fault, rate: 1.5 })).toThrow(/rate 1.5. Give a number from 0/);
    expect(() => control.inject({ target: { policy: 'p' }, fault: { kind: 'http', status: 200 }, rate: 1 })).toThrow(/status 200. Give a failing status from 400 to 599/);
    expect(() => control.inject({ target: { policy: 'p' }, fault: { kind: 'latency', ms: -1 }, rate: 1 })).toThrow(/latency ms -1/);
    expect(() => control.inject({ target: { route: 'payments' }, fault, rate: 1 })).toThrow(/Give "METHOD \/path"/);
    expect(() => control.inject({ target: { origin: 'http://x' }, fault, rate: 1 })).toThrow(/origin without an httpClient/);
    expect(() => control.inject({ id: 'no spaces', target: { policy: 'p' }, fault, rate: 1 })).toThrow(/id "no spaces" is not valid/);
    expect(() => control.inject({ target: { policy: 'p' }, fault: { kind: 'http', status: 503, headers: { 'bad header': 'x' } }, rate: 1 })).toThrow(/invalid header/);
    expect(() => control.switch('missing', true)).toThrow(/No chaos rule has the id "missing"/);
    const bounded = new ChaosControl({ clock: new FakeClock(), events: () => undefined, maxRules: 2 });
    bounded.inject({ target: { policy: 'a' }, fault, rate: 1 });
    bounded.inject({ target: { policy: 'b' }, fault, rate: 1 });
    expect(() => bounded.inject({ target: { policy: 'c' }, fault, rate: 1 })).toThrow(/At most 2 chaos rules/);
    // replacing an existing rule is not a new one
    expect(bounded.inject({ id: 'chaos-1', target: { policy: 'a2' }, fault, rate: 0.5 }).rate).toBe(0.5);
  });

  it('a pipeline built without chaos has no injection stage and describes the same stages', async () => {
    const { control, env, registry } = setup();
    control.inject({ target: { policy: 'payments' }, fault: { kind: 'exception' }, rate: 1 });
    const plain = createPipeline({ key: 'payments', retry: { maxAttempts: 2 } }, env, registry);
    const withChaos = createPipeline({ key: 'payments', retry: { maxAttempts: 2 }, chaos: { control, site } }, env, registry);
    expect(withChaos.stages).toEqual(plain.stages);
    await expect(plain.execute(async () => 'ok')).resolves.toBe('ok');
  });
});
