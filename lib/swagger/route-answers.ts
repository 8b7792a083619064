import type { INestApplicationContext } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { boundMethodsOf, isRouteHandler } from '../engine/binding/bound-method.js';
import type { FallbackCause } from '../core/options.js';
import { ResilienceProblemCode } from '../http/resilience-error.mapper.js';
import { IdempotencyErrorCode } from '../core/idempotency/idempotency-core.errors.js';
import { IdempotencyStore } from '../core/idempotency/idempotency-store.interface.js';
import { IdempotentRoutes } from '../engine/idempotent-routes.js';
import type { ResolvedResilienceOptions } from '../interfaces/resilience-module-options.interface.js';
import { RESOLVED_RESILIENCE_OPTIONS } from '../resilience.constants.js';
import { ResiliencePipelines } from '../engine/resilience-pipelines.js';

/**
 * One problem+json answer a decorated route can give.
 * @internal
 */
export interface RouteProblem {
  /** HTTP status of the answer. */
  readonly status: number;
  /** Its stable `code`. */
  readonly code: string;
  /** Short summary of the problem type (the problem's `title`). */
  readonly title: string;
  /** When the route answers it, for the API's readers. */
  readonly when: string;
  /** Whether the answer carries `Retry-After`. */
  readonly retryAfter: boolean;
}

/**
 * What the library adds to a route's HTTP contract: the idempotency key it reads and the problems
 * it can answer with, as the application's resolved options make them.
 * @internal
 */
export interface RouteAnswers {
  /** The `Idempotency-Key` request header of an `@Idempotent()` route (absent when a `keyResolver` reads the key elsewhere). */
  readonly idempotencyKey?: { readonly header: string; readonly required: boolean };
  /** Whether successful answers may be replays (`Idempotent-Replayed: true`) and echo the key. */
  readonly idempotent: boolean;
  /** Every problem the route can answer with, in status order. */
  readonly problems: readonly RouteProblem[];
}

/** The problems a route's resilience stages can produce, before a fallback takes some of them back. */
interface StageProblem extends RouteProblem {
  /** The fallback cause that turns this problem into the fallback's value. */
  readonly cause?: FallbackCause;
}

const upstreamProblems = (): StageProblem[] => [
  { status: 503, code: ResilienceProblemCode.UpstreamUnavailable, title: 'Dependency unavailable', when: 'A dependency failed transiently (5xx, 408, 429 or a network error) and no retry could fix it.', retryAfter: true, cause: 'transient' },
  { status: 502, code: ResilienceProblemCode.UpstreamRejected, title: 'Bad Gateway', when: 'A dependency refused the request (a 4xx other than 408 and 429): retrying cannot help.', retryAfter: false },
];

/**
 * What each decorated route of `app` adds to its HTTP contract, by the route's handler function
 * (what Nest and `@nestjs/swagger` read the route's metadata from). A handler inherited by several
 * controllers gets the answers of all of them. Empty when the module runs with `enabled: false`.
 * @internal
 */
export function describeDecoratedRoutes(app: INestApplicationContext): Map<Function, RouteAnswers> {
  const options = app.get<ResolvedResilienceOptions>(RESOLVED_RESILIENCE_OPTIONS, { strict: false });
  const answers = new Map<Function, RouteAnswers>();
  if (!options.enabled) return answers;
  const pipelines = app.get(ResiliencePipelines, { strict: false });
  const idempotency = app.get(IdempotentRoutes, { strict: false });
  // Only stores on a database connection pool (the SQL stores, the ones with transactions) can run
  // out of connections; the Redis and in-memory stores never answer pool_exhausted.
  const store = app.get<IdempotencyStore>(IdempotencyStore, { strict: false });
  const pooled = typeof store.runInTransaction === 'function';
  for (const wrapper of app.get(DiscoveryService, { strict: false }).getControllers()) {
    const classRef = wrapper.metatype;
    if (typeof classRef !== 'function' || !classRef.prototype) continue;
    for (const method of boundMethodsOf(classRef.prototype as object)) {
      if (!isRouteHandler(method.wrapper)) continue;
      const problems: StageProblem[] = [];
      const target = pipelines.targetFor(classRef, method.wrapper, method.name);
      if (target !== undefined) {
        const stages = pipelines.describe(target);
        problems.push(
          { status: options.timeout.status, code: ResilienceProblemCode.Timeout, title: 'Request timed out', when: `The deadline (${target.timeout.total} ms) or the last attempt's timeout passed; the work was cancelled.`, retryAfter: false, cause: 'timeout' },
          ...upstreamProblems(),
        );
        for (const stage of stages) {
          if (stage.kind === 'retry') {
            problems.push({ status: 503, code: ResilienceProblemCode.RetriesExhausted, title: 'Dependency failed', when: 'Every attempt failed and the last error says nothing more specific.', retryAfter: true, cause: 'retries_exhausted' });
          } else if (stage.kind === 'circuit-breaker') {
            problems.push({ status: 503, code: ResilienceProblemCode.CircuitOpen, title: 'Dependency unavailable', when: 'The circuit breaker is open: the dependency was not called.', retryAfter: true, cause: 'circuit_open' });
          } else if (stage.kind === 'bulkhead') {
            problems.push({ status: target.bulkheadRejectStatus, code: ResilienceProblemCode.BulkheadRejected, title: 'Too many concurrent requests', when: 'The route is at its concurrency limit and its queue is full (or the wait ended).', retryAfter: true, cause: 'bulkhead_rejected' });
          }
        }
        const fallback = stages.find((stage) => stage.kind === 'fallback');
        // a fallback answers its value instead of the problems of the causes it catches; a
        // predicate or an error class cannot be read ahead, so those keep every problem listed
        const caught = fallback && Array.isArray(fallback.options.on) ? new Set(fallback.options.on.filter((on) => typeof on === 'string')) : new Set();
        for (let index = problems.length - 1; index >= 0; index--) {
          const { cause } = problems[index]!;
          if (cause !== undefined && caught.has(cause)) problems.splice(index, 1);
        }
      }
      const plan = idempotency.planFor(classRef, method);
      if (plan !== undefined) {
        const { options: idempotent } = plan;
        const header = idempotent.headerName;
        if (idempotent.required) {
          problems.push({ status: 400, code: IdempotencyErrorCode.KeyMissing, title: 'Idempotency-Key missing', when: `The request has no ${header}.`, retryAfter: false });
        }
        problems.push(
          { status: 400, code: IdempotencyErrorCode.KeyInvalid, title: 'Idempotency-Key invalid', when: 'The key breaks the key grammar: 1–255 characters sent as one RFC 8941 string, or a bare key (a UUID, a token) that is not a number.', retryAfter: false },
          { status: 400, code: IdempotencyErrorCode.BodyTooDeep, title: 'Request body nested too deeply', when: `The body nests deeper than ${idempotent.fingerprintLimits.maxDepth} levels; nothing was run or stored.`, retryAfter: false },
          { status: 413, code: IdempotencyErrorCode.BodyTooLarge, title: 'Request body too large', when: `The body's canonical JSON is larger than ${idempotent.fingerprintLimits.maxBytes} bytes; nothing was run or stored.`, retryAfter: false },
          { status: 409, code: IdempotencyErrorCode.RequestInProgress, title: 'Request in progress', when: 'A request with this key is still running: retry with the same key after Retry-After.', retryAfter: true },
          { status: 422, code: IdempotencyErrorCode.KeyReused, title: 'Idempotency-Key reused', when: 'The key was already used for a different request (method, path, query, body or scope).', retryAfter: false },
        );
        if (!idempotent.failOpen) {
          problems.push(
            { status: 503, code: IdempotencyErrorCode.StoreUnavailable, title: 'Idempotency store unavailable', when: 'The key could not be recorded (the idempotency store was unreachable or its connection dropped); the request was not executed.', retryAfter: true },
            ...(pooled ? [{ status: 503, code: IdempotencyErrorCode.StorePoolExhausted, title: 'Idempotency store busy', when: 'No database connection was free in time to record the key; the request was not executed.', retryAfter: true }] : []),
            { status: 503, code: IdempotencyErrorCode.StoreTimeout, title: 'Idempotency store timed out', when: pooled ? 'A lock or statement of the store timed out; the request was not executed (or its writes were rolled back).' : 'An operation of the idempotency store took too long; the request was not executed.', retryAfter: true },
          );
        }
        if (idempotent.transactional) {
          problems.push({ status: 500, code: IdempotencyErrorCode.ResponseNotStorable, title: 'Response not storable', when: 'The response could not be stored, so the handler\'s writes were rolled back.', retryAfter: false });
        }
      }
      if (target === undefined && plan === undefined) continue;
      const route: RouteAnswers = {
        idempotencyKey: plan && !plan.options.keyResolver ? { header: plan.options.headerName, required: plan.options.required } : undefined,
        idempotent: plan !== undefined,
        problems: problems.map(({ cause: _cause, ...problem }) => problem),
      };
      answers.set(method.wrapper, merge(answers.get(method.wrapper), route));
    }
  }
  return answers;
}

/** The answers of a handler shared by two controllers (inherited): everything either can answer. */
function merge(known: RouteAnswers | undefined, route: RouteAnswers): RouteAnswers {
  const problems = new Map<string, RouteProblem>();
  for (const problem of [...(known?.problems ?? []), ...route.problems]) problems.set(`${problem.status} ${problem.code}`, problem);
  return {
    idempotencyKey: known?.idempotencyKey ?? route.idempotencyKey,
    idempotent: (known?.idempotent ?? false) || route.idempotent,
    problems: [...problems.values()].sort((a, b) => a.status - b.status),
  };
}
