import type { RequestInfo, RequestInfoSource } from '../context/context-frame.js';
import { ResilienceConfigError } from '../core/errors.js';
import type { IdempotentOptions, ResolvedIdempotencyOptions } from '../core/idempotency/idempotency-options.interface.js';
import { isProblemDetailsException } from '../http/problem-details.js';
import { IDEMPOTENT_METADATA } from '../resilience.constants.js';
import type { ContextAdapter, ContextHandler, ContextHost, HandlerProfile, IdempotentCall } from './context-adapter.js';
import { contextRequest } from './context-request.js';
import { rpcProblemOf, type RpcProblem } from './rpc.context.js';
import { PeerExport, ValueIdempotentCall } from './value-call.js';

/** Nest's `WsException` class, as loaded from the application's own `@nestjs/websockets`. */
type WsExceptionClass = new (error: string | object) => Error & { getError(): string | object };

/** `@SubscribeMessage(event)` writes the event's name here (`@nestjs/websockets` constants, read without importing it). */
const MESSAGE_METADATA = 'message';

/**
 * The object a WebSocket client receives in the `exception` event for a problem (Nest's
 * `WsException` error object): the same fields as an RPC caller gets.
 * @publicApi
 */
export type WsProblem = RpcProblem;

/** A gateway's client, read by shape: a `ws` WebSocket (numeric `readyState`) or a socket.io `Socket`. */
interface WsClientLike {
  readonly readyState?: number;
  readonly connected?: boolean;
  send?(data: string): void;
  emit?(event: string, payload: unknown): unknown;
  once?(event: string, listener: () => void): unknown;
  removeListener?(event: string, listener: () => void): unknown;
}

/** `WebSocket.OPEN` of the `ws` package. */
const WS_OPEN = 1;

/** The profile of a gateway message handler: the event it subscribes to. */
interface WsProfile extends HandlerProfile {
  readonly event: string;
}

/**
 * WebSocket gateways (`@SubscribeMessage`) on the `ws` and socket.io adapters. Host: `[client,
 * data]`. A message carries no headers, so nothing gives a request id, a deadline or an
 * idempotency key but the message itself: `@Idempotent()` needs `key: (data, client) => …`. The
 * client disconnecting aborts its messages' work. Errors reach the client as Nest's `exception`
 * event carrying a {@link WsProblem} (a `WsException` with that object).
 * @internal
 */
export class WsContextAdapter implements ContextAdapter {
  readonly type = 'ws' as const;
  readonly handlerNoun = 'WebSocket message handler';
  private readonly WsException = new PeerExport(
    async () => (await import('@nestjs/websockets')).WsException as WsExceptionClass,
    'A gateway message handler ran before ResilienceModule prepared the WebSocket context. Import ResilienceModule in the root module of the application.',
  );

  prepare(): Promise<void> {
    return this.WsException.prepare();
  }

  /** Whether `@nestjs/websockets` was loaded (the application has gateways). */
  get prepared(): boolean {
    return this.WsException.prepared;
  }

  profile(handler: ContextHandler, idempotent: boolean): WsProfile {
    if (idempotent) assertWsKey(handler);
    const event = Reflect.getMetadata(MESSAGE_METADATA, handler.handler) as unknown;
    const name = typeof event === 'string' ? event : handler.where;
    return { handler, operation: name, answersCaller: true, event: name };
  }

  describe(host: ContextHost, profile: HandlerProfile): RequestInfoSource {
    let info: RequestInfo | undefined;
    return {
      request: host[0],
      contextType: 'ws',
      info: () => (info ??= wsInfo(host, profile)),
    };
  }

  watchCaller(host: ContextHost, onGone: () => void): () => void {
    const client = host[0] as WsClientLike | undefined;
    if (typeof client?.once !== 'function') return noop;
    // `ws` closes, socket.io disconnects
    const native = typeof client.readyState === 'number';
    if (native ? client.readyState !== WS_OPEN : client.connected === false) {
      onGone();
      return noop;
    }
    const event = native ? 'close' : 'disconnect';
    client.once(event, onGone);
    return () => void client.removeListener?.(event, onGone);
  }

  deadlineOf(): undefined {
    return undefined;
  }

  commitCheck(): undefined {
    return undefined;
  }

  renderError(error: unknown): unknown {
    if (!isProblemDetailsException(error)) return error;
    return new (this.wsException())(rpcProblemOf(error));
  }

  idempotencyOptions(options: ResolvedIdempotencyOptions): ResolvedIdempotencyOptions {
    const { key, scope } = options;
    return {
      ...options,
      keyResolver: key === undefined ? undefined : (source: WsKeySource) => key(source.data, source.client),
      scope: typeof scope === 'function' ? (source: WsKeySource) => scope(source.data, source.client) : scope,
    };
  }

  idempotencyApplies(): boolean {
    return true;
  }

  idempotentCall(host: ContextHost, profile: HandlerProfile, options: ResolvedIdempotencyOptions): IdempotentCall {
    return new WsIdempotentCall(this, host, profile as WsProfile, options, this.describe(host, profile));
  }

  /** Nest's `WsException`, loaded at start-up; a filter of the application that checks `instanceof WsException` sees the real class. */
  wsException(): WsExceptionClass {
    return this.WsException.get();
  }
}

/**
 * Refuses `@Idempotent()` on a gateway handler without a `key` function: a WebSocket message
 * carries no headers, so nothing else can name its key.
 */
function assertWsKey(handler: ContextHandler): void {
  const options = (Reflect.getMetadata(IDEMPOTENT_METADATA, handler.handler) ?? Reflect.getMetadata(IDEMPOTENT_METADATA, handler.classRef)) as IdempotentOptions | undefined;
  if (options?.key !== undefined) return;
  throw new ResilienceConfigError(
    `@Idempotent() on ${handler.where} (a WebSocket message handler) has no key to read: a WebSocket message carries no Idempotency-Key header${options?.keyResolver === undefined ? '' : ', and keyResolver reads an HTTP request'}. ` +
      'Read the key from the message: @Idempotent({ key: (data, client) => data.requestId }).',
  );
}

function noop(): void {}

/** What a gateway handler's `key` and `scope` functions are called with. */
interface WsKeySource {
  readonly data: unknown;
  readonly client: unknown;
}

/** Operation and OpenTelemetry attributes of one message. */
function wsInfo(host: ContextHost, profile: HandlerProfile): RequestInfo {
  const client = host[0] as WsClientLike | undefined;
  const attributes: Record<string, string> = {
    'network.protocol.name': 'websocket',
    'websocket.event': profile.operation,
    'websocket.library': typeof client?.readyState === 'number' ? 'ws' : 'socket.io',
  };
  return { contextType: 'ws', operation: profile.operation, attributes };
}

/** One message of an `@Idempotent()` gateway handler. */
class WsIdempotentCall extends ValueIdempotentCall {
  constructor(
    private readonly adapter: WsContextAdapter,
    host: ContextHost,
    profile: WsProfile,
    options: ResolvedIdempotencyOptions,
    source: RequestInfoSource,
  ) {
    const keySource: WsKeySource = { data: host[1], client: host[0] };
    // a message carries no request id: the source's info has none
    super(contextRequest('ws', profile, options, source, { method: 'MESSAGE', url: profile.event, body: host[1], request: keySource }), source);
  }

  protected storedError(body: unknown): unknown {
    return new (this.adapter.wsException())(body as object);
  }

  renderError(error: unknown): unknown {
    return this.adapter.renderError(error);
  }
}
