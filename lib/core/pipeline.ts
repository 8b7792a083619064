import { Cancellation, contextWith } from './cancellation.js';
import { abortErrorOf } from './classify.js';
import { ChaosStep } from './chaos-step.js';
import type { PipelineChaos } from './fault-injection.js';
import { FallbackPolicy } from './fallback.policy.js';
import type {
  PipelineSpec,
  ResolvedBulkheadOptions,
  ResolvedCircuitBreakerOptions,
  ResolvedFallbackOptions,
  ResolvedRetryOptions,
} from './options.js';
import type { PolicyContext, PolicyEnvironment } from './policy.js';
import type { PolicyRegistry } from './policy-registry.js';
import { RateLimitPolicy } from './rate-limit.policy.js';
import { resolveRateLimit, type ResolvedRate } from './rate-limiter.js';
import { RetryPolicy, type RetryHooks } from './retry.policy.js';
import { TimeoutPolicy } from './timeout.policy.js';
import { TimedRetryRun, type TimedRetryPlan } from './timed-retry-run.js';
import { once, promiseOf, workOf, type Settle, type Step, type Work } from './step.js';
import {
  resolveBulkheadOptions,
  resolveCircuitBreakerOptions,
  resolveFallbackOptions,
  resolveRetryOptions,
  validatePipelineSpec,
} from './validate.js';

/**
 * One stage of a pipeline (`kind`) with its resolved options (defaults filled in).
 * @publicApi
 */
export type PipelineStage =
  | {
      /** The stage. */
      readonly kind: 'fallback';
      /** Its options. */
      readonly options: ResolvedFallbackOptions;
    }
  | {
      /** The stage. */
      readonly kind: 'bulkhead';
      /** Its options. */
      readonly options: ResolvedBulkheadOptions;
    }
  | {
      /** The stage. */
      readonly kind: 'total-timeout';
      /** Its options. */
      readonly options: {
        /** Deadline of the whole operation, in ms. */
        readonly total: number;
      };
    }
  | {
      /** The stage. */
      readonly kind: 'retry';
      /** Its options. */
      readonly options: ResolvedRetryOptions;
    }
  | {
      /** The stage. */
      readonly kind: 'circuit-breaker';
      /** Its options. */
      readonly options: ResolvedCircuitBreakerOptions;
    }
  | {
      /** The stage. */
      readonly kind: 'rate-limit';
      /** Its options. */
      readonly options: {
        /** The rate and burst while the limit is kept. */
        readonly rate: ResolvedRate;
        /** The rate each instance keeps alone while the shared state is unreachable. */
        readonly fallback: ResolvedRate;
        /** Whether the limit is fleet-wide (on the shared policy state). */
        readonly shared: boolean;
      };
    }
  | {
      /** The stage. */
      readonly kind: 'attempt-timeout';
      /** Its options. */
      readonly options: {
        /** Limit of one attempt, in ms. */
        readonly attempt: number;
      };
    };

/** The kind of a {@link PipelineStage}. @publicApi */
export type PipelineStageKind = PipelineStage['kind'];

/**
 * The canonical order of the stages, outer → inner: fallback, bulkhead, total timeout, retry,
 * circuit breaker, rate limit, attempt timeout (docs/decorators.md explains why). A rate limit sits
 * inside the breaker (an open breaker refuses without spending a turn) and outside the attempt
 * timeout (the wait for a turn is not part of the attempt).
 * @publicApi
 */
export const PIPELINE_ORDER: readonly PipelineStageKind[] = Object.freeze([
  'fallback',
  'bulkhead',
  'total-timeout',
  'retry',
  'circuit-breaker',
  'rate-limit',
  'attempt-timeout',
]);

/**
 * Per-call options of {@link Pipeline.execute}.
 * @publicApi
 */
export interface PipelineExecuteOptions {
  /** The caller's signal (client disconnect, parent operation): aborting it stops the work and every retry. */
  readonly signal?: AbortSignal;
  /** Returns `true` once the result may no longer be retried (response started). */
  readonly isCommitted?: () => boolean;
  /** An absolute deadline on the policy clock (an inbound deadline header): it is enforced even without a total timeout. */
  readonly deadline?: number;
  /**
   * The caller's cancellation token, used instead of `signal` (cheaper: its `AbortSignal` is only
   * created if the work reads it): the pipeline follows it and never aborts or disposes it.
   * @internal
   */
  readonly cancellation?: Cancellation;
}

/**
 * A ready-to-run composition of policies for one key.
 * @publicApi
 */
export interface Pipeline {
  /** The policy key. */
  readonly key: string;
  /** The stages, outer → inner. */
  readonly stages: readonly PipelineStage[];
  /** Runs `fn` through every stage. */
  execute<T>(fn: (context: PolicyContext) => Promise<T>, options?: PipelineExecuteOptions): Promise<T>;
  /**
   * {@link execute} in callback form: `work` settles each attempt, `settle` the whole call (once).
   * What the Nest adapter uses, so a call costs no promise per stage.
   * @internal
   */
  run(work: Work, options: PipelineExecuteOptions, settle: Settle): void;
}

/**
 * The stages `spec` produces, outer → inner, with resolved options. Pure: it builds no policy and
 * touches no registry (for tests, start-up logs and a debug endpoint).
 * @publicApi
 */
export function describePipeline(spec: PipelineSpec): PipelineStage[] {
  const stages: PipelineStage[] = [];
  if (spec.fallback) stages.push({ kind: 'fallback', options: resolveFallbackOptions(spec.fallback) });
  if (spec.bulkhead) stages.push({ kind: 'bulkhead', options: resolveBulkheadOptions(spec.bulkhead) });
  if (spec.timeout?.total !== undefined) stages.push({ kind: 'total-timeout', options: { total: spec.timeout.total } });
  if (spec.retry) stages.push({ kind: 'retry', options: resolveRetryOptions(spec.retry) });
  if (spec.circuitBreaker) stages.push({ kind: 'circuit-breaker', options: resolveCircuitBreakerOptions(spec.circuitBreaker) });
  if (spec.rateLimit) stages.push({ kind: 'rate-limit', options: { ...resolveRateLimit(spec.rateLimit, `policy "${spec.key}"`), shared: spec.rateLimit.shared === true } });
  if (spec.timeout?.attempt !== undefined) stages.push({ kind: 'attempt-timeout', options: { attempt: spec.timeout.attempt } });
  return stages;
}

/** One stage of a built pipeline: its policy in callback form. */
type Runner = Step<RetryHooks>;

function runnerFor(
  stage: PipelineStage,
  key: string,
  env: PolicyEnvironment,
  registry: PolicyRegistry,
  spec: PipelineSpec,
  retryPolicy: RetryPolicy | undefined,
): Runner {
  switch (stage.kind) {
    case 'fallback':
      return new FallbackPolicy(stage.options, env);
    case 'bulkhead':
      return registry.bulkhead(key, spec.bulkhead);
    case 'total-timeout':
      return new TimeoutPolicy('total', stage.options.total, env);
    case 'retry':
      return retryPolicy!;
    case 'circuit-breaker':
      return registry.circuitBreaker(key, spec.circuitBreaker);
    case 'rate-limit':
      return new RateLimitPolicy(key, registry.rateLimiter(key, spec.rateLimit!), env);
    case 'attempt-timeout':
      return new TimeoutPolicy('attempt', stage.options.attempt, env);
  }
}

/**
 * Builds the pipeline of `spec` in the canonical order (fallback → bulkhead → total timeout →
 * retry (+ budget) → circuit breaker → rate limit → attempt timeout → fn). Breaker, bulkhead and budget come
 * from `registry`, so every pipeline with the same key shares them. The operation's deadline is
 * fixed when `execute` is called (`min(options.deadline, now + total)`), so time spent queued in the
 * bulkhead counts against it. Validates `spec` first.
 * @throws ResilienceConfigError when `spec` can never work.
 * @publicApi
 */
export function createPipeline(spec: PipelineSpec, env: PolicyEnvironment, registry: PolicyRegistry): Pipeline {
  validatePipelineSpec(spec, `policy "${spec.key}"`);
  const { key } = spec;
  const stages = describePipeline(spec);
  const total = spec.timeout?.total;
  const attemptLimit = spec.timeout?.attempt;
  // Without retries there is one attempt, bounded by the total timeout (started first): an attempt
  // timeout that is not shorter can never fire first, so it is left out of the chain (still described).
  const redundantAttempt = !spec.retry && total !== undefined && attemptLimit !== undefined && attemptLimit >= total;
  const retryStage = stages.find((stage): stage is Extract<PipelineStage, { kind: 'retry' }> => stage.kind === 'retry');
  const retryPolicy =
    retryStage === undefined
      ? undefined
      : new RetryPolicy(
          retryStage.options,
          env,
          retryStage.options.budget === false ? undefined : registry.retryPermits(key, retryStage.options.budget),
        );
  const runners = stages
    .filter((stage) => !(redundantAttempt && stage.kind === 'attempt-timeout'))
    .map((stage) => runnerFor(stage, key, env, registry, spec, retryPolicy));
  // A caller deadline needs enforcing even when the spec has no total timeout: a deadline-only guard
  // takes the total timeout's place for such calls.
  const guardIndex = stages.findIndex((stage) => PIPELINE_ORDER.indexOf(stage.kind) > PIPELINE_ORDER.indexOf('total-timeout'));
  const deadlineGuard = new TimeoutPolicy('total', Infinity, env);
  const guardedRunners =
    total !== undefined
      ? runners
      : [
          ...runners.slice(0, guardIndex === -1 ? runners.length : guardIndex),
          deadlineGuard,
          ...runners.slice(guardIndex === -1 ? runners.length : guardIndex),
        ];
  if (spec.chaos !== undefined) {
    // innermost: an injected fault meets every policy on its way out, as a real one would
    const chaos = new ChaosStep(spec.chaos);
    if (guardedRunners !== runners) guardedRunners.push(chaos);
    runners.push(chaos);
  }

  // a bulkhead may queue the call: the stages after it then start later than the call
  const queues = spec.bulkhead !== undefined;
  // a rate limit may wait for a turn: the first attempt then starts later than the call
  const waitsBeforeAttempt = spec.rateLimit !== undefined;

  /** Runs `chain[index]` and the stages after it, then `work`. */
  const runFrom = (chain: readonly Runner[], index: number, work: Work, context: PolicyContext, settle: Settle, hooks: RetryHooks): void => {
    if (index === chain.length) {
      work(context, settle);
      return;
    }
    chain[index]!.run((inner, innerSettle) => runFrom(chain, index + 1, work, inner, innerSettle, hooks), context, settle, hooks);
  };

  // Timeouts and a retry alone (the commonest pipelines) run as one object per call, with the
  // same outcomes and events as the chain of their policies (timed-retry-run.ts).
  const timedRetry: TimedRetryPlan | undefined =
    spec.fallback === undefined && spec.bulkhead === undefined && spec.circuitBreaker === undefined && spec.rateLimit === undefined && spec.chaos === undefined
      ? { key, env, total, attempt: redundantAttempt ? undefined : attemptLimit, retry: retryPolicy }
      : undefined;

  const run = (work: Work, options: PipelineExecuteOptions, settle: Settle): void => {
    const caller = options.cancellation;
    const token = caller ?? Cancellation.from(options.signal);
    // only a token that follows an external signal holds a listener to remove
    const done: Settle =
      caller === undefined && options.signal !== undefined
        ? (failed, outcome) => {
            token.dispose();
            settle(failed, outcome);
          }
        : settle;
    if (token.aborted) {
      if (caller === undefined) token.dispose();
      settle(true, abortErrorOf(token));
      return;
    }
    const now = env.clock.now();
    const deadline = Math.min(options.deadline ?? Infinity, total === undefined ? Infinity : now + total);
    if (timedRetry !== undefined) {
      // what a passed deadline reports: the total timeout, else the caller's time left
      const deadlineMs = total ?? Math.max(0, deadline - now);
      new TimedRetryRun(timedRetry, work, token, deadline, deadlineMs, options, done).start(now);
      return;
    }
    const chain = Number.isFinite(options.deadline ?? Infinity) ? guardedRunners : runners;
    const hooks: RetryHooks = new CallHooks(options, queues ? undefined : now, queues || waitsBeforeAttempt ? undefined : now);
    runFrom(chain, 0, work, contextWith(token, deadline, 1, key), once(done), hooks);
  };

  return {
    key,
    stages,
    execute<T>(fn: (context: PolicyContext) => Promise<T>, options: PipelineExecuteOptions = {}): Promise<T> {
      return promiseOf<T>((settle) => run(workOf(fn), options, settle));
    },
    run,
  };
}

/**
 * The {@link RetryHooks} of one call: a class, not a literal, so V8 never moves every call's hooks
 * (and what they hold) to old space after seeing some outlive a scavenge. The commit check is
 * called on the call's options (a method there: nothing is read or bound before a failure asks).
 */
class CallHooks implements RetryHooks {
  constructor(
    private readonly options: PipelineExecuteOptions,
    readonly callStartedAt: number | undefined,
    readonly firstAttemptStartedAt: number | undefined,
  ) {}

  isCommitted(): boolean {
    return this.options.isCommitted?.() ?? false;
  }
}
