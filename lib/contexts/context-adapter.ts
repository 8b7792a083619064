import type { RequestInfoSource } from '../context/context-frame.js';
import type { Clock } from '../core/clock.js';
import type { IdempotentRequest, IdempotentResponse } from '../core/idempotency/idempotency-core.interface.js';
import type { ResolvedIdempotencyOptions } from '../core/idempotency/idempotency-options.interface.js';
import type { StoredResponse } from '../core/idempotency/idempotency-store.interface.js';
import type { ResilienceContextType } from '../engine/binding/context-type.js';

// Declared beside the handler classification that computes it (the binding layer reads it too).
export type { ResilienceContextType } from '../engine/binding/context-type.js';

/**
 * One decorated handler as the start-up pass sees it: where it is declared and what Nest
 * metadata says it serves. Computed once per (class, method).
 * @internal
 */
export interface ContextHandler {
  readonly classRef: Function;
  /** The method's name on its class. */
  readonly methodName: string;
  /** The method as installed (the bound wrapper, carrying every metadata key). */
  readonly handler: Function;
  /** `Class.method`, for messages. */
  readonly where: string;
  /** The context its metadata declares. */
  readonly type: ResilienceContextType;
}

/**
 * What the library knows of a handler in its context, computed once (the adapter's own
 * description: the pattern of a message handler, the field of a resolver, …).
 * @internal
 */
export interface HandlerProfile {
  readonly handler: ContextHandler;
  /**
   * The operation's name in events and logs: `POST /reports` is worked out per call on HTTP; a
   * message pattern, a GraphQL field or a WebSocket event otherwise.
   */
  readonly operation: string;
  /** Whether the handler answers its caller (a message, a query) or only consumes (an event, a job). */
  readonly answersCaller: boolean;
}

/**
 * The raw arguments Nest hands the handler's context (`ExecutionContext.getArgs()`): `[request,
 * response, next]` on HTTP, `[data, rpcContext]` on RPC, `[root, args, context, info]` on GraphQL,
 * `[client, data]` on WebSockets, `[job, token]` for a queue processor.
 * @internal
 */
export type ContextHost = readonly unknown[];

/**
 * How one `@Idempotent()` call meets the framework-free `IdempotencyCore` in its context: what the
 * core reads (key source, fingerprint input), where it writes (an HTTP response, nothing
 * elsewhere), how a stored outcome is answered again, and how a refusal reaches the caller.
 * @internal
 */
export interface IdempotentCall {
  readonly request: IdempotentRequest;
  readonly response: IdempotentResponse;
  /** The call's request id and operation (the scope the handler and the store's events run in). */
  readonly source: RequestInfoSource;
  /**
   * Whether a duplicate that finds its key in flight waits for the first one to finish and then
   * answers its stored outcome (messages, events, jobs: their callers cannot be asked to come
   * back later), or is refused at once with 409 + `Retry-After` (HTTP, as the IETF draft says).
   */
  readonly waitsForInFlight: boolean;
  /**
   * Answers a stored outcome: returns the value the caller gets, or throws the stored error.
   * `notKept` is set when the outcome was kept without its body (too large, a stream): the mapped
   * `idempotency_response_not_kept` problem, to answer instead of the body.
   */
  replay(stored: StoredResponse, notKept?: unknown): unknown;
  /** What the caller receives for `error` (the mapper's problem, or the handler's own error). */
  renderError(error: unknown): unknown;
  /**
   * An error the handler threw, as the core stores errors (an `HttpException`-like object with a
   * status and a body), when this context has its own error type that can be stored (an
   * `RpcException` with a status); {@link renderError} turns it back.
   */
  outcomeError?(error: unknown): unknown;
}

/**
 * One Nest context, as the engine sees it. The engine is context-free: everything it needs to
 * know about a call (its id, its name, a caller-gone signal, the caller's deadline, whether the
 * answer started, how an error is answered, where an idempotency key comes from) it asks the
 * adapter of the call's context. Adapters are stateless per call: each method reads the call's
 * {@link ContextHost}, so a call costs no adapter object. A new context plugs in by implementing
 * this interface and registering it in `ContextAdapters`.
 * @internal
 */
export interface ContextAdapter {
  readonly type: ResilienceContextType;
  /** How its handlers are called in messages (`HTTP route`, `message handler`, …). */
  readonly handlerNoun: string;

  /**
   * Loads what the adapter renders errors with (an optional peer such as `@nestjs/microservices`),
   * once, at start-up, when the application has handlers of this context.
   */
  prepare?(): Promise<void>;

  /**
   * Start-up: describes a handler, or throws a `ResilienceConfigError` naming the handler and the
   * fix when one of its decorators cannot hold in this context (`idempotent` tells whether it is
   * `@Idempotent()`).
   */
  profile(handler: ContextHandler, idempotent: boolean): HandlerProfile;

  /** Request id, operation name and OpenTelemetry attributes of the call (computed on first read). */
  describe(host: ContextHost, profile: HandlerProfile): RequestInfoSource;

  /** Calls `onGone` once if the caller goes away before the answer; returns a function that stops watching. */
  watchCaller(host: ContextHost, onGone: () => void, profile: HandlerProfile): () => void;

  /**
   * Whether the caller is gone already, checked before the handler runs. An adapter that has it
   * lets the engine start {@link watchCaller} only once a call goes asynchronous (a call that
   * settles in its first synchronous pass, where no close event can arrive, costs no watch); one
   * without it is watched from before the handler runs.
   */
  callerGone?(host: ContextHost, profile: HandlerProfile): boolean;

  /** The caller's absolute deadline on `clock`, when the transport carries one. */
  deadlineOf(host: ContextHost, clock: Clock): number | undefined;

  /** A check of whether the answer started (nothing may be retried after it), or `undefined` when it never starts before the handler returns. */
  commitCheck(host: ContextHost): (() => boolean) | undefined;

  /** What the caller receives for an error the mapper produced (or any other error the handler threw). */
  renderError(error: unknown, host: ContextHost): unknown;

  /**
   * Tells the caller that the answer is a stale last good result `ageMs` old (`@Fallback({ lastGood })`),
   * when the transport has a place for it (HTTP: the `Resilience-Stale` header); absent, the value
   * is answered as it is.
   */
  markStale?(host: ContextHost, ageMs: number): void;

  /**
   * The `@Idempotent()` options of a handler of this context, once, at start-up: where the key
   * comes from by default, and the `key` / `scope` functions called with this context's arguments.
   */
  idempotencyOptions(options: ResolvedIdempotencyOptions): ResolvedIdempotencyOptions;

  /** Whether `@Idempotent()` applies to this call at all (HTTP: not to GET, HEAD, OPTIONS). */
  idempotencyApplies(host: ContextHost): boolean;

  /** The idempotency view of one call of an `@Idempotent()` handler (see {@link IdempotentCall}). */
  idempotentCall(host: ContextHost, profile: HandlerProfile, options: ResolvedIdempotencyOptions): IdempotentCall;
}
