import { RESPONSE_PASSTHROUGH_METADATA, ROUTE_ARGS_METADATA, SSE_METADATA } from '@nestjs/common/constants.js';
import type { RequestInfoSource } from '../context/context-frame.js';
import { ResilienceConfigError } from '../core/errors.js';
import { STALE_HEADER } from '../core/last-good.js';
import { applyProblemHeaders, isProblemDetailsException } from '../http/problem-details.js';
import { clientGone, httpMethodOf, onClientDisconnect, rawResponseOf, requestInfoSource } from '../http/request-info.js';
import { SAFE_METHODS } from '../core/idempotency/idempotency-core.js';
import type { IdempotentRequest, IdempotentResponse } from '../core/idempotency/idempotency-core.interface.js';
import type { ResolvedIdempotencyOptions } from '../core/idempotency/idempotency-options.interface.js';
import type { StoredResponse } from '../core/idempotency/idempotency-store.interface.js';
import { replayableHeadersOf, replayStoredResponse, responseStatusOf, setResponseHeader } from '../idempotency/stored-response.js';
import type { ContextAdapter, ContextHandler, ContextHost, HandlerProfile, IdempotentCall } from './context-adapter.js';

/**
 * HTTP routes on Express and Fastify: the request id of pino-http, `X-Request-Id` or Fastify; the
 * connection's close as the caller-gone signal; problem+json answers with their headers; the
 * `Idempotency-Key` header (or `keyResolver` / `key(body, request)`) and a fingerprint of method,
 * URL and body. Host: `[request, response, next]`.
 * @internal
 */
export const httpContext: ContextAdapter = {
  type: 'http',
  handlerNoun: 'HTTP route',

  profile(handler: ContextHandler, idempotent: boolean): HandlerProfile {
    if (idempotent) assertReplayable(handler);
    return { handler, operation: handler.where, answersCaller: true };
  },

  describe(host: ContextHost): RequestInfoSource {
    return requestInfoSource(host[0]);
  },

  watchCaller(host: ContextHost, onGone: () => void): () => void {
    return onClientDisconnect(host[1], onGone);
  },

  callerGone(host: ContextHost): boolean {
    return clientGone(host[1]);
  },

  deadlineOf(): undefined {
    return undefined;
  },

  commitCheck(host: ContextHost): () => boolean {
    const raw = rawResponseOf(host[1]);
    return () => raw.headersSent === true;
  },

  renderError(error: unknown, host: ContextHost): unknown {
    if (isProblemDetailsException(error)) applyProblemHeaders(host[1], error);
    return error;
  },

  markStale(host: ContextHost, ageMs: number): void {
    setResponseHeader(host[1] as Record<string, unknown>, STALE_HEADER, String(Math.floor(ageMs / 1000)));
  },

  idempotencyOptions(options: ResolvedIdempotencyOptions): ResolvedIdempotencyOptions {
    const { key } = options;
    if (key === undefined) return options;
    return { ...options, keyResolver: (request: any) => key(request?.body, request) };
  },

  idempotencyApplies(host: ContextHost): boolean {
    const method = (host[0] as { method?: unknown }).method;
    return !SAFE_METHODS.has(String(method ?? 'GET').toUpperCase());
  },

  idempotentCall(host: ContextHost, profile: HandlerProfile, options: ResolvedIdempotencyOptions): IdempotentCall {
    return new HttpIdempotentCall(host[0], host[1], profile.handler.where, options);
  },
};

/** A stream or a hand-written response cannot be stored and replayed: refused at start-up. */
function assertReplayable(handler: ContextHandler): void {
  const { where } = handler;
  if (Reflect.getMetadata(SSE_METADATA, handler.handler)) {
    throw new ResilienceConfigError(`${where} is @Idempotent() and @Sse(): an event stream cannot be stored or replayed. Remove @Idempotent() from it.`);
  }
  if (handlesResponseItself(handler.classRef, handler.methodName)) {
    throw new ResilienceConfigError(
      `${where} is @Idempotent() but writes the response itself through @Res()/@Next(), so its response cannot be stored or replayed. Use @Res({ passthrough: true }) and return the body, or remove @Idempotent().`,
    );
  }
}

function handlesResponseItself(controller: Function, name: string | symbol): boolean {
  const args = (Reflect.getMetadata(ROUTE_ARGS_METADATA, controller, name) ?? {}) as Record<string, unknown>;
  const usesResponse = Object.keys(args).some((key) => key.startsWith('1:') || key.startsWith('2:'));
  return usesResponse && !Reflect.getMetadata(RESPONSE_PASSTHROUGH_METADATA, controller, name);
}

/**
 * One Express or Fastify request of an `@Idempotent()` route, and its response as the core sees
 * it. One object per request (it is also the response view).
 */
class HttpIdempotentCall implements IdempotentCall, IdempotentResponse {
  readonly request: HttpIdempotentRequest;
  readonly source: RequestInfoSource;
  readonly waitsForInFlight = false;

  constructor(
    request: any,
    private readonly raw: any,
    name: string,
    options: ResolvedIdempotencyOptions,
  ) {
    this.source = requestInfoSource(request);
    this.request = new HttpIdempotentRequest(name, options, request, this.source);
  }

  get response(): IdempotentResponse {
    return this;
  }

  status(): number | undefined {
    return responseStatusOf(this.raw);
  }

  replayableHeaders(allowList: ReadonlySet<string> | readonly string[]): Record<string, string> {
    return replayableHeadersOf(this.raw, allowList instanceof Set ? allowList : new Set(allowList));
  }

  setHeader(name: string, value: string): void {
    setResponseHeader(this.raw, name, value);
  }

  replay(stored: StoredResponse, notKept?: unknown): unknown {
    setResponseHeader(this.raw, 'Idempotent-Replayed', 'true');
    const replay = replayStoredResponse(this.raw, stored);
    if (notKept !== undefined) return this.notKept(stored, notKept);
    if (replay.kind === 'error') throw this.renderError(replay.error);
    return replay.value;
  }

  /**
   * The replay of a response kept without its body: the original status (already set) with the
   * mapped problem as the body, not as an exception: the original was a success.
   */
  private notKept(stored: StoredResponse, mapped: unknown): unknown {
    // a custom error mapper that answers something else is obeyed
    if (!isProblemDetailsException(mapped) || mapped.getStatus() !== stored.status) throw this.renderError(mapped);
    applyProblemHeaders(this.raw, mapped);
    return mapped.problem;
  }

  /** Same media type and headers the first time as on replay, whoever raised the problem. */
  renderError(error: unknown): unknown {
    if (isProblemDetailsException(error)) applyProblemHeaders(this.raw, error);
    return error;
  }
}

/**
 * What the core reads of one Express or Fastify request. The route and the request id are worked
 * out only when an event or a warning reads them (on Express each costs slow property lookups).
 */
class HttpIdempotentRequest implements IdempotentRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: unknown;
  readonly hasUser: boolean;

  constructor(
    readonly name: string,
    readonly options: ResolvedIdempotencyOptions,
    readonly request: any,
    private readonly source: RequestInfoSource,
  ) {
    this.method = httpMethodOf(request);
    this.url = request.originalUrl ?? request.raw?.url ?? request.url ?? '/';
    this.headers = request.headers ?? {};
    this.body = request.body;
    this.hasUser = request.user !== undefined && request.user !== null;
  }

  get route(): string {
    // requestInfoSource always works one out
    return this.source.info().route!;
  }

  get requestId(): string | undefined {
    return this.source.info().requestId;
  }
}
