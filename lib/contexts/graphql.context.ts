import { HttpException } from '@nestjs/common';
import type { RequestInfo, RequestInfoSource } from '../context/context-frame.js';
import type { Clock } from '../core/clock.js';
import { ResilienceConfigError } from '../core/errors.js';
import type { IdempotentRequest, IdempotentResponse } from '../core/idempotency/idempotency-core.interface.js';
import type { ResolvedIdempotencyOptions } from '../core/idempotency/idempotency-options.interface.js';
import type { StoredResponse } from '../core/idempotency/idempotency-store.interface.js';
import { REQUEST_ID_HEADER, REQUEST_TIMEOUT_HEADER } from '../fetch/with-deadline.js';
import { isProblemDetailsException, type ProblemDetailsException } from '../http/problem-details.js';
import { rawRequestOf, requestIdOf, watchSocketClose } from '../http/request-info.js';
import { setResponseHeader } from '../idempotency/stored-response.js';
import type { ContextAdapter, ContextHandler, ContextHost, HandlerProfile, IdempotentCall } from './context-adapter.js';
import { contextRequest } from './context-request.js';
import { PeerExport } from './value-call.js';
import { replayStoredValue } from './value-replay.js';

/** `graphql`'s `GraphQLError` class, as loaded from the application's own `graphql` package. */
type GraphQLErrorClass = new (message: string, options: { extensions: Record<string, unknown> }) => Error;

/** `@Query` / `@Mutation` / `@Subscription` write the root type here; `@ResolveField` writes `graphql:resolve_property` instead. */
const RESOLVER_TYPE_METADATA = 'graphql:resolver_type';

/**
 * The `extensions` of the `GraphQLError` a GraphQL client receives for a problem, in its
 * `errors[]` entry (the other fields' data is kept).
 * @publicApi
 */
export interface GraphQLProblemExtensions {
  /** Stable machine-readable code: `timeout`, `circuit_open`, `bulkhead_rejected`, `idempotency_key_reused`, … */
  readonly code: string;
  /** When a retry can succeed, in ms (absent when the problem gives no hint). */
  readonly retryAfterMs?: number;
  /**
   * The status an HTTP route would have answered, and its `Retry-After`, as information: the
   * GraphQL response itself stays `200` with the other fields' data (`headers` is a plain record,
   * so Apollo Server does not take it as an instruction to change the response's status).
   */
  readonly http: {
    /** The HTTP status the problem would have on a REST route (429, 503, 504…). */
    readonly status: number;
    /** Headers that status would carry, such as `retry-after` in seconds (empty when there are none). */
    readonly headers: Readonly<Record<string, string>>;
  };
  /** Short summary of the problem type. */
  readonly title: string;
  /** URI naming the problem type (`problemTypeBase` + `code`). */
  readonly type: string;
}

/** The GraphQL extensions of a problem. @internal */
export function graphQlExtensionsOf(problem: ProblemDetailsException): GraphQLProblemExtensions {
  const { status, code, title, type } = problem.problem;
  const retryAfter = Object.entries(problem.headers).find(([name]) => name.toLowerCase() === 'retry-after')?.[1];
  return {
    code,
    ...(problem.retryAfterMs === undefined ? {} : { retryAfterMs: problem.retryAfterMs }),
    http: { status, headers: retryAfter === undefined ? {} : { 'retry-after': retryAfter } },
    title,
    type,
  };
}

/** What `GqlExecutionContext` hands a resolver: `[root, args, context, info]`; `info` read by shape. */
interface ResolveInfoLike {
  readonly fieldName?: string;
  readonly parentType?: { readonly name?: string };
  readonly operation?: { readonly operation?: string; readonly name?: { readonly value?: string } };
}

/** The GraphQL context Nest's Apollo and Mercurius drivers build: the HTTP request as `req` (Mercurius adds `reply`). */
interface GraphQLContextLike {
  readonly req?: unknown;
  readonly reply?: unknown;
}

/** The profile of a resolver: its root type (`Query`, `Mutation`, `Subscription`), absent on a field resolver. */
interface GraphQLProfile extends HandlerProfile {
  readonly rootType: string | undefined;
}

/**
 * GraphQL resolvers (`@Query`, `@Mutation`, `@ResolveField`) on `@nestjs/graphql` with Apollo or
 * Mercurius, over HTTP. Host: `[root, args, context, info]`. The request id, the caller's budget
 * (`x-request-timeout-ms`) and the idempotency key come from the GraphQL request's HTTP headers;
 * its connection closing aborts the field's work. Errors reach the client as a `GraphQLError`
 * whose `extensions` are {@link GraphQLProblemExtensions}: one entry of `errors[]`, the other
 * fields' data kept. `@Idempotent()` holds on mutations only (a query reads; a subscription
 * streams), keyed by the `Idempotency-Key` header of the HTTP request or `key: (args, context) =>`.
 * @internal
 */
export class GraphQlContextAdapter implements ContextAdapter {
  readonly type = 'graphql' as const;
  readonly handlerNoun = 'GraphQL resolver';
  private readonly GraphQLError = new PeerExport(
    async () => (await import('graphql')).GraphQLError as unknown as GraphQLErrorClass,
    'A GraphQL resolver ran before ResilienceModule prepared the GraphQL context. Import ResilienceModule in the root module of the application.',
  );

  prepare(): Promise<void> {
    return this.GraphQLError.prepare();
  }

  /** Whether `graphql` was loaded (the application has resolvers). */
  get prepared(): boolean {
    return this.GraphQLError.prepared;
  }

  profile(handler: ContextHandler, idempotent: boolean): GraphQLProfile {
    const rootType = Reflect.getMetadata(RESOLVER_TYPE_METADATA, handler.handler) as string | undefined;
    if (rootType === 'Subscription') {
      throw new ResilienceConfigError(
        `${handler.where} is a GraphQL subscription with a resilience decorator: a subscription streams events to its client for as long as it stays open, so a timeout, a retry, a breaker, a bulkhead or idempotency has no single call to apply to. ` +
          'Decorate the service method that produces each event instead, and remove the decorator from the subscription resolver.',
      );
    }
    if (idempotent && rootType !== 'Mutation') {
      throw new ResilienceConfigError(
        `@Idempotent() on ${handler.where} (a GraphQL ${rootType === 'Query' ? 'query' : 'field resolver'}) cannot hold: only a mutation changes state, and a query or a field runs again whenever it is asked for. ` +
          'Put @Idempotent() on the @Mutation() that makes the change, and remove it here.',
      );
    }
    return { handler, operation: handler.where, answersCaller: true, rootType };
  }

  describe(host: ContextHost, profile: HandlerProfile): RequestInfoSource {
    let info: RequestInfo | undefined;
    return {
      request: host[2],
      contextType: 'graphql',
      info: () => (info ??= graphQlInfo(host, profile)),
    };
  }

  watchCaller(host: ContextHost, onGone: () => void): () => void {
    const request = httpRequestOf(host);
    if (request === undefined) return noop;
    const socket = rawRequestOf(request)?.socket;
    return socket ? watchSocketClose(socket, onGone) : noop;
  }

  deadlineOf(host: ContextHost, clock: Clock): number | undefined {
    const budget = headerOf(httpRequestOf(host), REQUEST_TIMEOUT_HEADER);
    if (budget === undefined || !/^\d{1,10}$/.test(budget)) return undefined;
    return clock.now() + Number(budget);
  }

  commitCheck(): undefined {
    // the response goes out after every field resolved: nothing is sent while a resolver runs
    return undefined;
  }

  renderError(error: unknown): unknown {
    if (!isProblemDetailsException(error)) return error;
    return new (this.graphQlError())(error.problem.detail, { extensions: { ...graphQlExtensionsOf(error) } });
  }

  idempotencyOptions(options: ResolvedIdempotencyOptions): ResolvedIdempotencyOptions {
    // `key` and `scope` read the field's arguments and the GraphQL context; an HTTP-style
    // `keyResolver` still reads the HTTP request the operation came in
    const { key, keyResolver, scope } = options;
    return {
      ...options,
      keyResolver:
        key !== undefined
          ? (source: GraphQLKeySource) => key(source.args, source.context)
          : keyResolver === undefined
            ? undefined
            : (source: GraphQLKeySource) => keyResolver((source.context as GraphQLContextLike | undefined)?.req),
      scope: typeof scope === 'function' ? (source: GraphQLKeySource) => scope(source.args, source.context) : scope,
    };
  }

  idempotencyApplies(): boolean {
    return true;
  }

  idempotentCall(host: ContextHost, profile: HandlerProfile, options: ResolvedIdempotencyOptions): IdempotentCall {
    return new GraphQlIdempotentCall(this, host, profile, options, this.describe(host, profile));
  }

  /** `GraphQLError`, loaded at start-up from the application's `graphql` (one copy of the class with the server's). */
  graphQlError(): GraphQLErrorClass {
    return this.GraphQLError.get();
  }
}

function noop(): void {}

/** What a resolver's `key` and `scope` functions are called with: the field's arguments and the GraphQL context. */
interface GraphQLKeySource {
  readonly args: unknown;
  readonly context: unknown;
}

/** The HTTP request a GraphQL operation came in (`context.req`), when it came over HTTP. */
function httpRequestOf(host: ContextHost): unknown {
  const context = host[2] as GraphQLContextLike | undefined;
  return typeof context === 'object' && context !== null ? context.req : undefined;
}

/** The HTTP response of the operation: Express's `req.res`, Mercurius's `reply`. */
function httpResponseOf(host: ContextHost): unknown {
  const context = host[2] as GraphQLContextLike | undefined;
  if (typeof context !== 'object' || context === null) return undefined;
  return context.reply ?? (context.req as { res?: unknown } | undefined)?.res;
}

/** Lower-case request header names: Express, Fastify and Node requests all keep them there. */
function headersOf(request: unknown): Record<string, string | string[] | undefined> {
  const headers = (request as { headers?: Record<string, string | string[] | undefined> } | undefined)?.headers;
  return typeof headers === 'object' && headers !== null ? headers : {};
}

function headerOf(request: unknown, name: string): string | undefined {
  const value = headersOf(request)[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Request id, operation and OpenTelemetry attributes of one resolver call. */
function graphQlInfo(host: ContextHost, profile: HandlerProfile): RequestInfo {
  const info = host[3] as ResolveInfoLike | undefined;
  const operation = info?.parentType?.name !== undefined && info.fieldName !== undefined ? `${info.parentType.name}.${info.fieldName}` : profile.operation;
  const attributes: Record<string, string> = {};
  const operationType = info?.operation?.operation;
  if (operationType !== undefined) attributes['graphql.operation.type'] = operationType;
  const operationName = info?.operation?.name?.value;
  if (operationName !== undefined) attributes['graphql.operation.name'] = operationName;
  attributes['graphql.field.path'] = operation;
  const request = httpRequestOf(host);
  const requestId = request === undefined ? undefined : (requestIdOf(request) ?? headerOf(request, REQUEST_ID_HEADER));
  return { requestId, contextType: 'graphql', operation, attributes };
}

/** One call of an `@Idempotent()` mutation: the key from the HTTP request's header or the `key` function, the fingerprint of the field's arguments. */
class GraphQlIdempotentCall implements IdempotentCall, IdempotentResponse {
  readonly request: IdempotentRequest;
  // a duplicate in flight is refused at once (409 in `extensions.http`), as the HTTP request it is
  readonly waitsForInFlight = false;

  constructor(
    private readonly adapter: GraphQlContextAdapter,
    private readonly host: ContextHost,
    profile: HandlerProfile,
    options: ResolvedIdempotencyOptions,
    readonly source: RequestInfoSource,
  ) {
    const keySource: GraphQLKeySource = { args: host[1], context: host[2] };
    const info = host[3] as ResolveInfoLike | undefined;
    const field = info?.fieldName !== undefined ? `Mutation.${info.fieldName}` : profile.operation;
    const http = httpRequestOf(host);
    this.request = contextRequest('graphql', profile, options, source, {
      method: 'MUTATION',
      url: field,
      headers: headersOf(http),
      body: host[1],
      route: field,
      request: keySource,
      hasUser: (http as { user?: unknown } | undefined)?.user != null,
    });
  }

  get response(): IdempotentResponse {
    return this;
  }

  status(): number {
    return 200;
  }

  replayableHeaders(): Record<string, string> {
    // one field of a response others share: its headers are not this field's to keep
    return {};
  }

  setHeader(name: string, value: string): void {
    const response = httpResponseOf(this.host);
    if (typeof response === 'object' && response !== null) setResponseHeader(response as Record<string, unknown>, name, value);
  }

  replay(stored: StoredResponse, notKept?: unknown): unknown {
    this.setHeader('Idempotent-Replayed', 'true');
    // the resolver's own stored HttpException is rebuilt as Nest's GraphQL driver rendered it the first time
    return replayStoredValue(stored, notKept, (error) => this.adapter.renderError(error), (body, status) => new HttpException(body as object, status));
  }

  renderError(error: unknown): unknown {
    return this.adapter.renderError(error);
  }
}
