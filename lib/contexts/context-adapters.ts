import { Injectable } from '@nestjs/common';
import type { RequestInfo, RequestInfoSource } from '../context/context-frame.js';
import { ResilienceConfigError } from '../core/errors.js';
import type { IdempotentCall } from './context-adapter.js';
import type { ContextAdapter, ContextHandler, ContextHost, HandlerProfile, ResilienceContextType } from './context-adapter.js';
import { contextTypeOf } from '../engine/binding/context-type.js';
import { httpContext } from './http.context.js';
import { GraphQlContextAdapter } from './graphql.context.js';
import { JobContextAdapter } from './job.context.js';
import { MethodContextAdapter } from './method.context.js';
import { RpcContextAdapter } from './rpc.context.js';
import { WsContextAdapter } from './ws.context.js';

/**
 * The context adapters of one application, and which context a handler belongs to: HTTP, RPC,
 * GraphQL, WebSocket gateways, BullMQ processors (`job`) and `@Idempotent()` provider methods
 * have full adapters. A provider method without `@Idempotent()` has no adapter: its policies run
 * as they always did.
 * @internal
 */
@Injectable()
export class ContextAdapters {
  /** The microservices context (the exception filter renders the library's errors reaching undecorated message handlers with it). */
  readonly rpc = new RpcContextAdapter();
  /** The GraphQL context (the exception filter renders the library's errors reaching undecorated resolvers with it). */
  readonly graphql = new GraphQlContextAdapter();
  private readonly ws = new WsContextAdapter();
  /** BullMQ processors (the engine settles their jobs with it: delayed, or failed for good). */
  readonly job = new JobContextAdapter();
  private readonly method = new MethodContextAdapter();
  private readonly adapters = new Map<ResilienceContextType, ContextAdapter>([
    ['http', httpContext],
    ['rpc', this.rpc],
    ['graphql', this.graphql],
    ['ws', this.ws],
    ['job', this.job],
  ]);
  private readonly others = new Map<string, ContextAdapter>();

  /** The adapter of a call's context (`ExecutionContext.getType()`), if there is one. */
  adapterFor(type: string): ContextAdapter | undefined {
    return this.adapters.get(type as ResilienceContextType);
  }

  /** An adapter for a context type no adapter knows (a custom transport's own type): the policies run, errors are left to Nest. */
  passthrough(type: string): ContextAdapter {
    let adapter = this.others.get(type);
    if (adapter === undefined) this.others.set(type, (adapter = passthroughContext(type as ResilienceContextType, `${type} handler`)));
    return adapter;
  }

  /** The context a handler's Nest metadata declares. */
  typeOf(classRef: Function, handler: Function, methodName: string): ResilienceContextType {
    return contextTypeOf(classRef, handler, methodName);
  }

  /**
   * The adapter of a handler's declared context: `method` only for an `@Idempotent()` provider
   * method (the others keep their plain path).
   */
  adapterOf(handler: ContextHandler, idempotent: boolean): ContextAdapter | undefined {
    if (handler.type === 'method') return idempotent ? this.method : undefined;
    return this.adapters.get(handler.type);
  }

  /** The start-up description of a handler in its context (throws when a decorator cannot hold there). */
  profile(handler: ContextHandler, idempotent: boolean): HandlerProfile | undefined {
    return this.adapterOf(handler, idempotent)?.profile(handler, idempotent);
  }

  /** Loads what the adapters of `types` render errors with (optional peers), once per application. */
  async prepare(types: Iterable<ResilienceContextType>): Promise<void> {
    const adapters = new Set<ContextAdapter>();
    for (const type of types) {
      const adapter = this.adapters.get(type);
      if (adapter?.prepare) adapters.add(adapter);
    }
    await Promise.all([...adapters].map((adapter) => adapter.prepare!()));
  }
}

/**
 * Refuses `@Idempotent()` where no adapter reads a key yet: a duplicate would silently run again.
 * @throws ResilienceConfigError naming the handler and the fix.
 */
function refuseIdempotency(handler: ContextHandler, noun: string): never {
  throw new ResilienceConfigError(
    `@Idempotent() on ${handler.where} (a ${noun}) cannot hold: nothing reads an idempotency key there, so a duplicate would run the handler again. ` +
      'Put @Idempotent() on the HTTP route, the microservice message handler (@MessagePattern / @EventPattern with key: (data) => data.id) or the service method (key: (...args) => …) that does this work, and remove it here.',
  );
}

/**
 * A context whose calls run the policies and keep Nest's own error rendering, with events naming
 * the context and the handler (never a made-up HTTP route), and `@Idempotent()` refused.
 */
function passthroughContext(type: ResilienceContextType, noun: string): ContextAdapter {
  return {
    type,
    handlerNoun: noun,
    profile(handler: ContextHandler, idempotent: boolean): HandlerProfile {
      if (idempotent) refuseIdempotency(handler, noun);
      return { handler, operation: handler.where, answersCaller: true };
    },
    describe(_host: ContextHost, profile: HandlerProfile): RequestInfoSource {
      const info: RequestInfo = { contextType: type, operation: profile.operation };
      return { contextType: type, info: () => info };
    },
    watchCaller: () => noop,
    deadlineOf: () => undefined,
    commitCheck: () => undefined,
    renderError: (error: unknown) => error,
    idempotencyOptions: (options) => options,
    idempotencyApplies: () => false,
    idempotentCall(): IdempotentCall {
      throw new ResilienceConfigError(`@Idempotent() is not supported on a ${noun}.`);
    },
  };
}

function noop(): void {}
