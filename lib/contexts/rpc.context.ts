import { Socket } from 'node:net';
import type { RequestInfo, RequestInfoSource } from '../context/context-frame.js';
import type { Clock } from '../core/clock.js';
import { REQUEST_ID_HEADER, REQUEST_TIMEOUT_HEADER } from '../fetch/with-deadline.js';
import { isProblemDetailsException, type ProblemDetailsException } from '../http/problem-details.js';
import { watchSocketClose } from '../http/request-info.js';
import type { ResolvedIdempotencyOptions } from '../core/idempotency/idempotency-options.interface.js';
import { isHttpErrorLike, type HttpErrorLike } from '../core/idempotency/response-encoding.js';
import type { ContextAdapter, ContextHandler, ContextHost, HandlerProfile, IdempotentCall } from './context-adapter.js';
import { contextRequest } from './context-request.js';
import { MICROSERVICE_PATTERN } from '../engine/binding/context-type.js';
import { PeerExport, ValueIdempotentCall } from './value-call.js';

/** Nest's `RpcException` class, as loaded from the application's own `@nestjs/microservices`. */
type RpcExceptionClass = new (error: string | object) => Error & { getError(): string | object };

/** `@MessagePattern` / `@EventPattern` metadata (`@nestjs/microservices` constants, read without importing it). */
const PATTERN_HANDLER_METADATA = 'microservices:handler_type';
/** `PatternHandler.EVENT` */
const EVENT_HANDLER = 2;

/**
 * The error object an RPC caller receives (`RpcException.getError()`, what a `ClientProxy`
 * rejects with): the problem's fields, the retry hint in ms, and `message` (Nest's own RPC errors
 * carry one) equal to `detail`.
 * @publicApi
 */
export interface RpcProblem {
  /** HTTP-equivalent status (503 for a timeout or an open circuit, 422 for a reused key, …). */
  readonly status: number;
  /** Stable machine-readable code: `timeout`, `circuit_open`, `bulkhead_rejected`, `idempotency_key_reused`, … */
  readonly code: string;
  /** Short summary of the problem type. */
  readonly title: string;
  /** Client-safe explanation (never an internal error message). */
  readonly detail: string;
  /** Same text as `detail`, where Nest's own RPC errors put theirs. */
  readonly message: string;
  /** When a retry can succeed, in ms (absent when the problem gives no hint). */
  readonly retryAfterMs?: number;
  /** URI naming the problem type (`problemTypeBase` + `code`). */
  readonly type: string;
}

/** The RPC error object of a problem. @internal */
export function rpcProblemOf(problem: ProblemDetailsException): RpcProblem {
  const { status, code, title, detail, type } = problem.problem;
  const retryAfterMs = problem.retryAfterMs;
  return { status, code, title, detail, message: detail, ...(retryAfterMs === undefined ? {} : { retryAfterMs }), type };
}

/** What the transports' contexts offer (Nest 12): read by shape, so any transport with the same accessors works. */
interface RpcContextLike {
  getMetadata?(): Record<string, unknown> | undefined;
  getHeaders?(): { get?(name: string): string; keys?(): Iterable<string> } | undefined;
  getMessage?(): { properties?: { headers?: Record<string, unknown>; messageId?: unknown }; fields?: { exchange?: unknown; routingKey?: unknown } } | undefined;
  getSocketRef?(): { socket?: unknown } | undefined;
  getPattern?(): unknown;
  getSubject?(): unknown;
  getChannel?(): unknown;
  getTopic?(): unknown;
}

/** How each of Nest's transports is named in OpenTelemetry attributes, by its context class. */
const TRANSPORTS: Readonly<Record<string, { readonly system: string; readonly broker: boolean }>> = {
  TcpContext: { system: 'nestjs', broker: false },
  NatsContext: { system: 'nats', broker: true },
  RmqContext: { system: 'rabbitmq', broker: true },
  KafkaContext: { system: 'kafka', broker: true },
  RedisContext: { system: 'redis', broker: true },
  MqttContext: { system: 'mqtt', broker: true },
};

/** The profile of a message or event handler: its pattern and which kind it is. */
interface RpcProfile extends HandlerProfile {
  readonly pattern: string;
}

/**
 * Microservice handlers (`@MessagePattern`, `@EventPattern`) on every Nest transport. Host:
 * `[data, rpcContext]`. Out-of-band values come from the packet's metadata (TCP and Redis in Nest
 * 12, set with `ClientProxy#setOnDispatchHook`) or the message headers (NATS, RabbitMQ), with the
 * HTTP header names: `x-request-id`, `x-request-timeout-ms` (the caller's remaining budget, which
 * becomes the call's deadline) and the idempotency key header (`idempotency-key` by default). A
 * TCP caller that closes its connection aborts its message's work; events never depend on their
 * emitter's connection. Errors reach the caller as an `RpcException` whose error object is an
 * {@link RpcProblem}.
 * @internal
 */
export class RpcContextAdapter implements ContextAdapter {
  readonly type = 'rpc' as const;
  readonly handlerNoun = 'message handler';
  private readonly RpcException = new PeerExport(
    async () => (await import('@nestjs/microservices')).RpcException as RpcExceptionClass,
    'A microservice handler ran before ResilienceModule prepared the RPC context. Import ResilienceModule in the root module of the microservice.',
  );

  prepare(): Promise<void> {
    return this.RpcException.prepare();
  }

  /** Whether `@nestjs/microservices` was loaded (the application has microservice handlers). */
  get prepared(): boolean {
    return this.RpcException.prepared;
  }

  profile(handler: ContextHandler): RpcProfile {
    const patterns = Reflect.getMetadata(MICROSERVICE_PATTERN, handler.handler) as unknown[] | undefined;
    const pattern = patternText(Array.isArray(patterns) ? patterns[0] : patterns) ?? handler.where;
    const answersCaller = Reflect.getMetadata(PATTERN_HANDLER_METADATA, handler.handler) !== EVENT_HANDLER;
    return { handler, operation: pattern, pattern, answersCaller };
  }

  describe(host: ContextHost, profile: HandlerProfile): RequestInfoSource {
    let info: RequestInfo | undefined;
    return {
      request: host[1],
      contextType: 'rpc',
      info: () => (info ??= rpcInfo(host, profile)),
    };
  }

  watchCaller(host: ContextHost, onGone: () => void, profile: HandlerProfile): () => void {
    // an event's work never depends on whether its emitter is still connected
    if (!profile.answersCaller) return noop;
    const socket = (host[1] as RpcContextLike | undefined)?.getSocketRef?.()?.socket;
    return socket instanceof Socket ? watchSocketClose(socket, onGone) : noop;
  }

  deadlineOf(host: ContextHost, clock: Clock): number | undefined {
    const budget = headerOf(host[1], REQUEST_TIMEOUT_HEADER);
    if (budget === undefined || !/^\d{1,10}$/.test(budget)) return undefined;
    return clock.now() + Number(budget);
  }

  commitCheck(): undefined {
    return undefined;
  }

  renderError(error: unknown): unknown {
    if (error instanceof RpcOutcomeError || error instanceof UnstorableRpcError) return error.original;
    if (!isProblemDetailsException(error)) return error;
    return new (this.rpcException())(rpcProblemOf(error));
  }

  idempotencyOptions(options: ResolvedIdempotencyOptions): ResolvedIdempotencyOptions {
    const { key, scope, header } = options;
    return {
      ...options,
      // without a key function: the key header, else the broker's message id (JetStream's
      // Nats-Msg-Id header, RabbitMQ's messageId property), which a redelivery keeps
      keyResolver: key === undefined ? (source: RpcKeySource) => headerOf(source.context, header) ?? messageIdOf(source.context) : (source: RpcKeySource) => key(source.data, source.context),
      scope: typeof scope === 'function' ? (source: RpcKeySource) => scope(source.data, source.context) : scope,
    };
  }

  idempotencyApplies(): boolean {
    return true;
  }

  idempotentCall(host: ContextHost, profile: HandlerProfile, options: ResolvedIdempotencyOptions): IdempotentCall {
    return new RpcIdempotentCall(this, host, profile as RpcProfile, options, this.describe(host, profile));
  }

  /** Nest's `RpcException`, loaded at start-up; a filter of the application that checks `instanceof RpcException` sees the real class. */
  rpcException(): RpcExceptionClass {
    return this.RpcException.get();
  }
}

function noop(): void {}

/** What an RPC handler's `key` and `scope` functions are called with. */
interface RpcKeySource {
  readonly data: unknown;
  readonly context: unknown;
}

/** A pattern as text: strings as they are, objects as Nest routes them (sorted keys). */
function patternText(pattern: unknown): string | undefined {
  if (pattern === undefined || pattern === null) return undefined;
  if (typeof pattern === 'string' || typeof pattern === 'number') return String(pattern);
  if (typeof pattern !== 'object') return String(pattern);
  const entries = Object.keys(pattern as object)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${typeof (pattern as Record<string, unknown>)[key] === 'string' ? JSON.stringify((pattern as Record<string, unknown>)[key]) : patternText((pattern as Record<string, unknown>)[key])}`);
  return `{${entries.join(',')}}`;
}

/** The out-of-band values of a message, lower-case names: packet metadata (TCP, Redis) or headers (NATS, RabbitMQ). */
function headersOf(context: unknown): Record<string, string> {
  const ctx = context as RpcContextLike | undefined;
  const headers: Record<string, string> = {};
  if (ctx === undefined || ctx === null) return headers;
  if (typeof ctx.getMetadata === 'function') {
    for (const [name, value] of Object.entries(ctx.getMetadata() ?? {})) if (typeof value === 'string') headers[name.toLowerCase()] = value;
    return headers;
  }
  if (typeof ctx.getHeaders === 'function') {
    const natsHeaders = ctx.getHeaders();
    if (natsHeaders && typeof natsHeaders.keys === 'function' && typeof natsHeaders.get === 'function') {
      for (const name of natsHeaders.keys()) headers[name.toLowerCase()] = natsHeaders.get(name);
    }
    return headers;
  }
  if (typeof ctx.getMessage === 'function') {
    for (const [name, value] of Object.entries(ctx.getMessage()?.properties?.headers ?? {})) if (typeof value === 'string') headers[name.toLowerCase()] = value;
  }
  return headers;
}

function headerOf(context: unknown, name: string): string | undefined {
  return headersOf(context)[name];
}

/** The header JetStream deduplicates publishes by, and keeps on every redelivery. */
const NATS_MESSAGE_ID = 'nats-msg-id';

/** The broker's id of a message: JetStream's `Nats-Msg-Id` header, RabbitMQ's `messageId` property. */
function messageIdOf(context: unknown): string | undefined {
  const ctx = context as RpcContextLike | undefined;
  if (typeof ctx?.getHeaders === 'function') return headerOf(ctx, NATS_MESSAGE_ID);
  if (typeof ctx?.getMessage === 'function') {
    const id = ctx.getMessage()?.properties?.messageId;
    return typeof id === 'string' && id !== '' ? id : undefined;
  }
  return undefined;
}

/**
 * Where a RabbitMQ message was sent: its exchange, or, through the default exchange (Nest's
 * `ClientRMQ` without `exchange`), its routing key, which is the queue's name.
 */
function rabbitMqDestination(context: RpcContextLike | undefined): string | undefined {
  const fields = context?.getMessage?.()?.fields;
  if (fields === undefined) return undefined;
  if (typeof fields.exchange === 'string' && fields.exchange !== '') return fields.exchange;
  return typeof fields.routingKey === 'string' && fields.routingKey !== '' ? fields.routingKey : undefined;
}

/** Request id, operation and OpenTelemetry attributes of one message or event. */
function rpcInfo(host: ContextHost, profile: HandlerProfile): RequestInfo {
  const context = host[1] as RpcContextLike | undefined;
  const transport = TRANSPORTS[(context as object | undefined)?.constructor?.name ?? ''];
  const attributes: Record<string, string> = {};
  if (transport?.broker) {
    const destination = context?.getSubject?.() ?? context?.getChannel?.() ?? context?.getTopic?.() ?? rabbitMqDestination(context) ?? context?.getPattern?.();
    attributes['messaging.system'] = transport.system;
    attributes['messaging.destination.name'] = typeof destination === 'string' ? destination : profile.operation;
    const routingKey = context?.getMessage?.()?.fields?.routingKey;
    if (typeof routingKey === 'string' && routingKey !== '') attributes['messaging.rabbitmq.destination.routing_key'] = routingKey;
    attributes['messaging.operation.type'] = 'process';
    if (profile.answersCaller) attributes['rpc.method'] = profile.operation;
  } else {
    attributes['rpc.system'] = transport?.system ?? 'nestjs';
    attributes['rpc.method'] = profile.operation;
    if (transport !== undefined) attributes['network.transport'] = 'tcp';
  }
  return { requestId: headerOf(context, REQUEST_ID_HEADER), contextType: 'rpc', operation: profile.operation, attributes };
}

/** An `RpcException` the handler threw whose error object carries a numeric `status`: storable like an HTTP error. */
class RpcOutcomeError implements HttpErrorLike {
  constructor(
    readonly original: unknown,
    private readonly status: number,
    private readonly body: object,
  ) {}

  getStatus(): number {
    return this.status;
  }

  getResponse(): unknown {
    return this.body;
  }
}

/** A handler's error that is delivered as it is but never stored (it hides the status the core would store it by). */
class UnstorableRpcError extends Error {
  constructor(readonly original: Error | HttpErrorLike) {
    super('not stored');
    // events and logs name the handler's own error class, not this wrapper
    Object.defineProperty(this, 'constructor', { value: original.constructor });
  }
}

/** One message or event of an `@Idempotent()` handler, and the (absent) response the core writes to. */
class RpcIdempotentCall extends ValueIdempotentCall {
  constructor(
    private readonly adapter: RpcContextAdapter,
    host: ContextHost,
    profile: RpcProfile,
    options: ResolvedIdempotencyOptions,
    source: RequestInfoSource,
  ) {
    const keySource: RpcKeySource = { data: host[0], context: host[1] };
    const method = profile.answersCaller ? 'MESSAGE' : 'EVENT';
    super(contextRequest('rpc', profile, options, source, { method, url: profile.pattern, headers: headersOf(host[1]), body: host[0], request: keySource }), source);
  }

  protected storedError(body: unknown): unknown {
    return new (this.adapter.rpcException())(body as object);
  }

  renderError(error: unknown): unknown {
    return this.adapter.renderError(error);
  }

  /**
   * A handler's `RpcException` with a numeric `status`, as the core stores errors (its error
   * object replayed as is). A Nest `HttpException` means nothing to an RPC caller (Nest answers it
   * with its generic error), so it is not stored: the key is released, as after a crash.
   */
  outcomeError(error: unknown): unknown {
    if (isProblemDetailsException(error)) return error;
    if (isHttpErrorLike(error)) return new UnstorableRpcError(error);
    const RpcException = this.adapter.rpcException();
    if (!(error instanceof RpcException)) return error;
    const body = error.getError();
    const status = typeof body === 'object' && body !== null ? (body as { status?: unknown }).status : undefined;
    return typeof status === 'number' && Number.isInteger(status) && status >= 100 && status <= 599 ? new RpcOutcomeError(error, status, body as object) : error;
  }
}
