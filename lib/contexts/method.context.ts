import { currentInFrame, type RequestInfo, type RequestInfoSource } from '../context/context-frame.js';
import { ResilienceConfigError } from '../core/errors.js';
import type { IdempotentOptions, ResolvedIdempotencyOptions } from '../core/idempotency/idempotency-options.interface.js';
import { IDEMPOTENT_METADATA } from '../resilience.constants.js';
import type { ContextAdapter, ContextHandler, ContextHost, HandlerProfile, IdempotentCall } from './context-adapter.js';
import { contextRequest } from './context-request.js';
import { DetachedCallerHooks, ValueIdempotentCall } from './value-call.js';
import { storedFailureProblem } from './value-replay.js';

/**
 * `@Idempotent({ key: (...args) => … })` on a plain provider method (a service called by a route,
 * a worker, a cron job): host = the method's arguments. The key and scope functions get the
 * arguments; the fingerprint is the arguments (canonical JSON). A duplicate of a completed call
 * returns the stored value without running the method; one arriving while the first runs waits
 * for it (for at most one lease). Errors reach the caller as the method threw them; the
 * idempotency refusals (key reused, store down) as the library's `ProblemDetailsException`, which
 * an HTTP route answers as problem+json. The call runs under the request or message that called
 * it (its request id), with the same store, lease, fencing and transactional mode.
 * The policies of a decorated method without `@Idempotent()` never come here (no adapter, no cost).
 * @internal
 */
export class MethodContextAdapter extends DetachedCallerHooks implements ContextAdapter {
  readonly type = 'method' as const;
  readonly handlerNoun = 'provider method';

  /**
   * @throws ResilienceConfigError when the method's `@Idempotent()` has no `key` function: no
   * request carries a key to a provider method, so every call would be refused.
   */
  profile(handler: ContextHandler, idempotent: boolean): HandlerProfile {
    if (idempotent && keyOf(handler.handler) === undefined && keyOf(handler.classRef) === undefined) {
      throw new ResilienceConfigError(
        `@Idempotent() on ${handler.where} (a provider method) has no key: no request carries an Idempotency-Key to a method. ` +
          "Give it key: (...args) => …, read from the method's arguments (@Idempotent({ key: (order: Order) => order.id })), or put @Idempotent() on the HTTP route or message handler that calls it.",
      );
    }
    return { handler, operation: handler.where, answersCaller: true };
  }

  describe(_host: ContextHost, profile: HandlerProfile): RequestInfoSource {
    const outer = currentInFrame('request');
    if (outer !== undefined) return outer;
    const info: RequestInfo = { contextType: 'method', operation: profile.operation };
    return { contextType: 'method', info: () => info };
  }

  renderError(error: unknown): unknown {
    return error;
  }

  idempotencyOptions(options: ResolvedIdempotencyOptions): ResolvedIdempotencyOptions {
    const { key, scope } = options;
    if (key === undefined) throw new ResilienceConfigError('@Idempotent() on a provider method needs key: (...args) => ….');
    return {
      ...options,
      keyResolver: (args: readonly unknown[]) => key(...(args as [unknown, unknown])),
      scope: typeof scope === 'function' ? (args: readonly unknown[]) => scope(...(args as [unknown, unknown])) : scope,
    };
  }

  idempotentCall(host: ContextHost, profile: HandlerProfile, options: ResolvedIdempotencyOptions): IdempotentCall {
    return new MethodIdempotentCall(host, profile, options, this.describe(host, profile));
  }
}

/** The `key` function of the `@Idempotent()` options on a method or class, if any. */
function keyOf(target: Function): unknown {
  return (Reflect.getMetadata(IDEMPOTENT_METADATA, target) as IdempotentOptions | undefined)?.key;
}

/** One call of an `@Idempotent()` provider method. */
class MethodIdempotentCall extends ValueIdempotentCall {
  constructor(host: ContextHost, profile: HandlerProfile, options: ResolvedIdempotencyOptions, source: RequestInfoSource) {
    super(contextRequest('method', profile, options, source, { method: 'CALL', url: profile.operation, body: host, request: host }), source);
  }

  /** The stored error (an `HttpException` the method threw, stored by `storeIf`) thrown again as a problem. */
  protected storedError(body: unknown, status: number): unknown {
    return storedFailureProblem(status, typeof body === 'string' ? body : 'An earlier call with this key failed; the failure was stored.');
  }

  renderError(error: unknown): unknown {
    return error;
  }
}
