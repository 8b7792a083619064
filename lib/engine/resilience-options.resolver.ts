import { systemClock } from '../core/clock.js';
import { DEFAULT_ATTEMPT_TIMEOUT_MS, DEFAULT_MAX_POLICY_KEYS, DEFAULT_TOTAL_TIMEOUT_MS } from '../core/defaults.js';
import { ResilienceConfigError } from '../core/errors.js';
import { resolveChaosOptions } from '../core/fault-injection.js';
import type { BulkheadOptions, CircuitBreakerOptions, PipelineSpec, RetryOptions, TimeoutOptions } from '../core/options.js';
import type { RateLimitOptions } from '../core/rate-limiter.js';
import { systemRandom } from '../core/random.js';
import { requireSharedState } from '../core/shared-policy-state.js';
import { validatePipelineSpec } from '../core/validate.js';
import type {
  BulkheadDecoratorOptions,
  CircuitBreakerDecoratorOptions,
  RateLimitDecoratorOptions,
  FallbackMetadata,
  NamedFallbackOptions,
  NamedPolicyOptions,
  PolicyKeyContext,
  ResilienceModuleOptions,
  ResolvedResilienceOptions,
  RetryableOptions,
  TimeoutStatus,
} from '../interfaces/resilience-module-options.interface.js';
import { DEFAULT_PROBLEM_TYPE_BASE } from '../http/problem-details.js';
import {
  BULKHEAD_METADATA,
  CIRCUIT_BREAKER_METADATA,
  FALLBACK_METADATA,
  RATE_LIMIT_METADATA,
  RETRYABLE_METADATA,
  TIMEOUT_METADATA,
  USE_POLICY_METADATA,
} from '../resilience.constants.js';

const TIMEOUT_STATUSES: readonly TimeoutStatus[] = [503, 504, 408];

/**
 * Merges `forRoot()` options with the defaults and validates them. Runs once, in the provider of
 * `RESOLVED_RESILIENCE_OPTIONS`, for `forRoot` and `forRootAsync` alike.
 * @throws ResilienceConfigError naming the option and the fix.
 * @internal
 */
export function resolveResilienceOptions(options: ResilienceModuleOptions | undefined = {}): ResolvedResilienceOptions {
  const raw = options ?? {};
  const status = raw.timeout?.status ?? 503;
  if (!TIMEOUT_STATUSES.includes(status)) {
    throw new ResilienceConfigError(
      `ResilienceModule option timeout.status is ${String(status)}. Use 503 (the default), 504 or 408.`,
    );
  }
  const explicit = raw.timeout;
  if (explicit?.total !== undefined && explicit.attempt !== undefined && explicit.attempt > explicit.total) {
    throw new ResilienceConfigError(
      `ResilienceModule option timeout.attempt (${explicit.attempt} ms) is longer than timeout.total (${explicit.total} ms). Make timeout.attempt <= timeout.total.`,
    );
  }
  const maxPolicyKeys = raw.maxPolicyKeys ?? DEFAULT_MAX_POLICY_KEYS;
  if (!Number.isInteger(maxPolicyKeys) || maxPolicyKeys < 1) {
    throw new ResilienceConfigError(
      `ResilienceModule option maxPolicyKeys is ${String(maxPolicyKeys)}. Set it to a whole number >= 1 (default ${DEFAULT_MAX_POLICY_KEYS}).`,
    );
  }
  if ((raw as { interceptors?: unknown }).interceptors !== undefined) {
    throw new ResilienceConfigError(
      'ResilienceModule option interceptors was removed: the module binds nothing globally any more, and each decorated route or method runs through the library on its own. Remove the option.',
    );
  }
  const mapper: unknown = raw.errorMapper;
  if (mapper !== undefined && typeof mapper !== 'function' && typeof (mapper as { map?: unknown } | null)?.map !== 'function') {
    throw new ResilienceConfigError(
      'ResilienceModule option errorMapper is neither a class nor an object with a map() method. Pass a subclass of ResilienceErrorMapper (or an instance of one).',
    );
  }
  const rejectStatus = raw.bulkhead?.rejectStatus;
  if (rejectStatus !== undefined && rejectStatus !== 503 && rejectStatus !== 429) {
    throw new ResilienceConfigError(`ResilienceModule option bulkhead.rejectStatus is ${String(rejectStatus)}. Use 503 (the default) or 429.`);
  }
  const resolved: ResolvedResilienceOptions = {
    enabled: raw.enabled ?? true,
    retry: { ...raw.retry },
    timeout: {
      total: raw.timeout?.total ?? DEFAULT_TOTAL_TIMEOUT_MS,
      attempt: raw.timeout?.attempt ?? DEFAULT_ATTEMPT_TIMEOUT_MS,
      status,
    },
    circuitBreaker: { ...raw.circuitBreaker },
    bulkhead: { ...raw.bulkhead },
    policies: { ...raw.policies },
    idempotency: raw.idempotency,
    clock: raw.clock ?? systemClock,
    random: raw.random ?? systemRandom,
    maxPolicyKeys,
    errorMapper: raw.errorMapper,
    problemTypeBase: raw.problemTypeBase ?? DEFAULT_PROBLEM_TYPE_BASE,
    sharedState: raw.sharedState,
    chaos: resolveChaosOptions(raw.chaos, process.env.NODE_ENV),
    ...(raw.logging === undefined ? {} : { logging: raw.logging }),
    ...(raw.telemetry === undefined ? {} : { telemetry: raw.telemetry }),
  };
  validateModuleDefaults(resolved);
  for (const [name, policy] of Object.entries(resolved.policies)) validateNamedPolicy(resolved, name, policy);
  return resolved;
}

function validateModuleDefaults(options: ResolvedResilienceOptions): void {
  const { total, attempt } = options.timeout;
  const spec = {
    key: 'module defaults',
    timeout: { total, attempt: Math.min(attempt, total) },
    retry: options.retry,
    circuitBreaker: options.circuitBreaker,
    bulkhead: stripBulkhead(options.bulkhead),
  };
  validatePipelineSpec(spec, 'ResilienceModule.forRoot() defaults');
  requireSharedState(spec, 'ResilienceModule.forRoot() defaults', options.sharedState);
  const mandatory = options.sharedState === undefined ? [] : (['circuitBreaker', 'retryBudget', 'ping'] as const);
  const missing = mandatory.filter((name) => typeof (options.sharedState as unknown as Record<string, unknown>)[name] !== 'function');
  if (missing.length > 0) {
    throw new ResilienceConfigError(
      `ResilienceModule option sharedState lacks the SharedPolicyState method(s) ${missing.join(', ')}. Pass a SharedPolicyState such as new RedisPolicyState({ client }) from 'nest-resilience/redis'.`,
    );
  }
}

function validateNamedPolicy(options: ResolvedResilienceOptions, name: string, policy: NamedPolicyOptions): void {
  if (typeof policy !== 'object' || policy === null) {
    throw new ResilienceConfigError(`The named policy "${name}" is ${String(policy)}. Give it an object such as { retry: {}, timeout: 5000 }.`);
  }
  const fallback = policy.fallback;
  if (fallback !== undefined) {
    const sources = ['value', 'factory', 'provider'].filter((field) => field in fallback);
    if (sources.length !== 1) {
      throw new ResilienceConfigError(
        `The named policy "${name}" has a fallback with ${sources.length === 0 ? 'no source' : `${sources.join(' and ')}`}. Give exactly one of value, factory or provider.`,
      );
    }
  }
  const referenced = policy.retry?.policy ?? policy.circuitBreaker?.policy ?? policy.bulkhead?.policy ?? policy.rateLimit?.policy;
  if (referenced !== undefined) {
    throw new ResilienceConfigError(
      `The named policy "${name}" refers to the policy "${referenced}". Named policies cannot refer to each other; copy the options instead.`,
    );
  }
  const resolved = resolveTargetPolicy(options, {
    className: 'policy',
    methodName: name,
    method: {},
    class: { [USE_POLICY_METADATA]: name },
  });
  const spec = specWithoutFallback(resolved);
  validatePipelineSpec(spec, `the named policy "${name}"`);
  requireSharedState(spec, `The named policy "${name}"`, options.sharedState);
}

/**
 * Where a target's resilience settings were read from: the metadata of the method and of its class.
 * @internal
 */
export interface TargetMetadata {
  readonly className: string;
  readonly methodName: string;
  /** Metadata of the method (key → value). */
  readonly method: Readonly<Record<string, unknown>>;
  /** Metadata of the class (key → value). */
  readonly class: Readonly<Record<string, unknown>>;
}

/**
 * The resilience settings of one route or provider method: every layer (module defaults, named
 * policy, class, method) merged. Not exported from the package root.
 */
export interface ResolvedTargetPolicy {
  /** `Class.method`, for messages. */
  readonly where: string;
  readonly className: string;
  readonly methodName: string;
  /** Policy key when it does not depend on the call. */
  readonly key: string;
  /** Computes the key per call (`@CircuitBreaker({ key: fn })`). */
  readonly keyFn?: (context: PolicyKeyContext) => string;
  readonly timeout: Required<TimeoutOptions>;
  readonly retry?: RetryOptions;
  readonly circuitBreaker?: CircuitBreakerOptions;
  readonly bulkhead?: BulkheadOptions;
  readonly rateLimit?: RateLimitOptions;
  readonly fallback?: FallbackMetadata;
  /** `@Retryable({ allowNonIdempotentMethod: true })`. */
  readonly allowNonIdempotentMethod: boolean;
  /** HTTP status of a bulkhead rejection. */
  readonly bulkheadRejectStatus: 503 | 429;
}

/** The metadata keys that make a route or method "decorated". @internal */
export const RESILIENCE_METADATA_KEYS: readonly string[] = [
  TIMEOUT_METADATA,
  RETRYABLE_METADATA,
  CIRCUIT_BREAKER_METADATA,
  BULKHEAD_METADATA,
  RATE_LIMIT_METADATA,
  FALLBACK_METADATA,
  USE_POLICY_METADATA,
];

/**
 * Reads the resilience metadata of `handler` (a method function) and `classRef`.
 * @internal
 */
export function readTargetMetadata(classRef: Function, handler: Function, methodName: string): TargetMetadata {
  const read = (target: Function) => {
    const values: Record<string, unknown> = {};
    for (const key of RESILIENCE_METADATA_KEYS) {
      const value: unknown = Reflect.getMetadata(key, target);
      if (value !== undefined) values[key] = value;
    }
    return values;
  };
  return { className: classRef.name, methodName, method: read(handler), class: read(classRef) };
}

/** Whether the target carries any resilience decorator (on the method or its class). @internal */
export function isDecorated(metadata: TargetMetadata): boolean {
  return Object.keys(metadata.method).length > 0 || Object.keys(metadata.class).length > 0;
}

function namedPolicy(options: ResolvedResilienceOptions, name: string, where: string, via: string): NamedPolicyOptions {
  const policy = options.policies[name];
  if (policy) return policy;
  const known = Object.keys(options.policies);
  throw new ResilienceConfigError(
    `${via} on ${where} names the policy "${name}", which is not configured. ` +
      (known.length === 0
        ? 'No named policies are configured: add it to ResilienceModule.forRoot({ policies: { ... } }).'
        : `Known policies: ${known.map((k) => `"${k}"`).join(', ')}. Fix the name or add it to ResilienceModule.forRoot({ policies }).`),
  );
}

type PartLayer<T> = { readonly value: T; readonly policyName?: string };

/**
 * The class then method layer of one decorator, each expanded with the named policy it refers to
 * (`@Retryable('payments')` starts from `policies.payments.retry`).
 */
function partLayers<T extends { policy?: string }>(
  options: ResolvedResilienceOptions,
  metadata: TargetMetadata,
  key: string,
  part: 'retry' | 'circuitBreaker' | 'bulkhead' | 'rateLimit',
  decoratorName: string,
): Array<PartLayer<T>> {
  const layers: Array<PartLayer<T>> = [];
  for (const source of [metadata.class[key], metadata.method[key]] as Array<T | undefined>) {
    if (source === undefined) continue;
    if (source.policy !== undefined) {
      const policy = namedPolicy(options, source.policy, `${metadata.className}.${metadata.methodName}`, `@${decoratorName}('${source.policy}')`);
      const fromPolicy = (policy[part] ?? {}) as T;
      layers.push({ value: { ...fromPolicy, ...source }, policyName: source.policy });
    } else {
      layers.push({ value: source });
    }
  }
  return layers;
}

function merge<T extends object>(...layers: Array<T | undefined>): T {
  return Object.assign({}, ...layers.filter((layer) => layer !== undefined)) as T;
}

/** `@Timeout(ms)` means an attempt timeout when the target retries, a total timeout otherwise. */
function timeoutLayer(value: unknown, retries: boolean): TimeoutOptions | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'number') return retries ? { attempt: value } : { total: value };
  return value as TimeoutOptions;
}

/**
 * Merges every layer of a target's settings: module defaults < named policy (`@UsePolicy`) < class
 * decorators < method decorators. A part (retry, breaker, bulkhead, fallback) is on when the policy,
 * the class or the method turns it on; timeouts are always on for a decorated target (30 s total,
 * 10 s attempt, the default attempt capped at the total).
 * @throws ResilienceConfigError for an unknown policy name.
 * @internal
 */
export function resolveTargetPolicy(options: ResolvedResilienceOptions, metadata: TargetMetadata): ResolvedTargetPolicy {
  const where = `${metadata.className}.${metadata.methodName}`;
  const usePolicyName = (metadata.method[USE_POLICY_METADATA] ?? metadata.class[USE_POLICY_METADATA]) as string | undefined;
  const usePolicy = usePolicyName === undefined ? undefined : namedPolicy(options, usePolicyName, where, `@UsePolicy('${usePolicyName}')`);

  const retryLayers = partLayers<RetryableOptions>(options, metadata, RETRYABLE_METADATA, 'retry', 'Retryable');
  const breakerLayers = partLayers<CircuitBreakerDecoratorOptions>(options, metadata, CIRCUIT_BREAKER_METADATA, 'circuitBreaker', 'CircuitBreaker');
  const bulkheadLayers = partLayers<BulkheadDecoratorOptions>(options, metadata, BULKHEAD_METADATA, 'bulkhead', 'Bulkhead');

  const retryOn = usePolicy?.retry !== undefined || retryLayers.length > 0;
  const retryMerged = retryOn ? merge<RetryableOptions>(options.retry, usePolicy?.retry, ...retryLayers.map((l) => l.value)) : undefined;

  const breakerOn = usePolicy?.circuitBreaker !== undefined || breakerLayers.length > 0;
  const breakerMerged = breakerOn
    ? merge<CircuitBreakerDecoratorOptions>(options.circuitBreaker, usePolicy?.circuitBreaker, ...breakerLayers.map((l) => l.value))
    : undefined;

  const rateLimitLayers = partLayers<RateLimitDecoratorOptions>(options, metadata, RATE_LIMIT_METADATA, 'rateLimit', 'RateLimit');
  const rateLimitMerged =
    usePolicy?.rateLimit !== undefined || rateLimitLayers.length > 0 ? merge<RateLimitDecoratorOptions>(usePolicy?.rateLimit, ...rateLimitLayers.map((l) => l.value)) : undefined;

  const bulkheadOn = usePolicy?.bulkhead !== undefined || bulkheadLayers.length > 0;
  const bulkheadMerged = bulkheadOn
    ? merge<BulkheadDecoratorOptions>(options.bulkhead, usePolicy?.bulkhead, ...bulkheadLayers.map((l) => l.value))
    : undefined;

  const explicitTimeout = merge<TimeoutOptions>(
    timeoutLayer(usePolicy?.timeout, retryOn),
    timeoutLayer(metadata.class[TIMEOUT_METADATA], retryOn),
    timeoutLayer(metadata.method[TIMEOUT_METADATA], retryOn),
  );
  const total = explicitTimeout.total ?? options.timeout.total;
  const attempt = explicitTimeout.attempt ?? Math.min(options.timeout.attempt, total);

  const fallback = (metadata.method[FALLBACK_METADATA] ?? metadata.class[FALLBACK_METADATA]) as FallbackMetadata | undefined;

  const keySetting = breakerMerged?.key;
  const referencedPolicy =
    usePolicyName ?? [...retryLayers, ...breakerLayers, ...bulkheadLayers, ...rateLimitLayers].reverse().find((layer) => layer.policyName)?.policyName;
  const key = typeof keySetting === 'string' ? keySetting : (referencedPolicy ?? where);

  const rejectStatus = bulkheadMerged?.rejectStatus ?? 503;
  if (rejectStatus !== 503 && rejectStatus !== 429) {
    throw new ResilienceConfigError(`@Bulkhead() on ${where} has rejectStatus ${String(rejectStatus)}. Use 503 (the default) or 429.`);
  }
  if (keySetting !== undefined && typeof keySetting !== 'string' && typeof keySetting !== 'function') {
    throw new ResilienceConfigError(`@CircuitBreaker() on ${where} has a key that is neither a string nor a function. Pass a name or (context) => string.`);
  }

  return {
    where,
    className: metadata.className,
    methodName: metadata.methodName,
    key,
    keyFn: typeof keySetting === 'function' ? keySetting : undefined,
    timeout: { total, attempt },
    retry: retryMerged ? stripRetry(retryMerged) : undefined,
    circuitBreaker: breakerMerged ? stripBreaker(breakerMerged) : undefined,
    bulkhead: bulkheadMerged ? stripBulkhead(bulkheadMerged) : undefined,
    rateLimit: rateLimitMerged ? stripPolicy(rateLimitMerged) : undefined,
    fallback: fallback ?? (usePolicy?.fallback ? namedFallback(usePolicy.fallback) : undefined),
    allowNonIdempotentMethod: retryMerged?.allowNonIdempotentMethod === true,
    bulkheadRejectStatus: rejectStatus,
  };
}

/**
 * The core spec of a target, without its fallback (the fallback handler needs DI and the call's
 * arguments, added by the caller).
 * @internal
 */
export function specWithoutFallback(target: ResolvedTargetPolicy, key: string = target.key): PipelineSpec {
  return {
    key,
    timeout: target.timeout,
    ...(target.retry ? { retry: target.retry } : {}),
    ...(target.circuitBreaker ? { circuitBreaker: target.circuitBreaker } : {}),
    ...(target.bulkhead ? { bulkhead: target.bulkhead } : {}),
    ...(target.rateLimit ? { rateLimit: target.rateLimit } : {}),
  };
}

function namedFallback(fallback: NamedFallbackOptions): FallbackMetadata {
  const on = fallback.on === undefined ? {} : { on: fallback.on };
  if ('provider' in fallback && fallback.provider) return { ...on, source: { kind: 'provider', provider: fallback.provider } };
  if ('factory' in fallback && fallback.factory) return { ...on, source: { kind: 'factory', factory: fallback.factory } };
  return { ...on, source: { kind: 'value', value: (fallback as { value: unknown }).value } };
}

function stripRetry(options: RetryableOptions): RetryOptions {
  const { allowNonIdempotentMethod: _allow, policy: _policy, ...retry } = options;
  return retry;
}

function stripBreaker(options: CircuitBreakerDecoratorOptions): CircuitBreakerOptions {
  const { key: _key, policy: _policy, ...breaker } = options;
  return breaker;
}

function stripPolicy<T extends { readonly policy?: string }>(options: T): Omit<T, 'policy'> {
  const { policy: _policy, ...rest } = options;
  return rest;
}

function stripBulkhead(options: BulkheadDecoratorOptions): BulkheadOptions {
  const { rejectStatus: _status, policy: _policy, ...bulkhead } = options;
  return bulkhead;
}
