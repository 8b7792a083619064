import { PATH_METADATA } from '@nestjs/common/constants.js';

/**
 * The Nest contexts a decorated handler can run in: `ExecutionContext.getType()` for the first
 * four, `job` for a queue processor (BullMQ's `WorkerHost.process`, called by the worker, not by
 * Nest's router), `method` for any other provider method.
 * @publicApi
 */
export type ResilienceContextType = 'http' | 'rpc' | 'graphql' | 'ws' | 'job' | 'method';

// What each context's decorators write on a handler, read by name so that classifying a handler
// never loads an optional peer (@nestjs/microservices, @nestjs/graphql, @nestjs/websockets, @nestjs/bullmq).
/** Written by `@MessagePattern` and `@EventPattern`. @internal */
export const MICROSERVICE_PATTERN = 'microservices:pattern';
const GRAPHQL_RESOLVER_TYPE = 'graphql:resolver_type';
const GRAPHQL_FIELD_RESOLVER = 'graphql:resolve_property';
const WEBSOCKET_MESSAGE = 'websockets:message_mapping';
const BULLMQ_PROCESSOR = 'bullmq:processor_metadata';

/**
 * The context a handler's Nest metadata declares: `http` for a route, `rpc` for a message or event
 * handler, `graphql` for a resolver, `ws` for a gateway's message handler, `job` for a BullMQ
 * processor's `process`, `method` for anything else.
 * @internal
 */
export function contextTypeOf(classRef: Function, handler: Function, methodName: string | symbol): ResilienceContextType {
  if (Reflect.hasMetadata(PATH_METADATA, handler)) return 'http';
  if (Reflect.hasMetadata(MICROSERVICE_PATTERN, handler)) return 'rpc';
  if (Reflect.hasMetadata(GRAPHQL_RESOLVER_TYPE, handler) || Reflect.hasMetadata(GRAPHQL_FIELD_RESOLVER, handler)) return 'graphql';
  if (Reflect.hasMetadata(WEBSOCKET_MESSAGE, handler)) return 'ws';
  if (methodName === 'process' && Reflect.hasMetadata(BULLMQ_PROCESSOR, classRef)) return 'job';
  return 'method';
}

/** Whether Nest calls `handler` through its router with an `ExecutionContext` (a route, a message handler, a resolver, a gateway handler). @internal */
export function isContextHandler(classRef: Function, handler: Function, methodName: string | symbol): boolean {
  const type = contextTypeOf(classRef, handler, methodName);
  return type !== 'method' && type !== 'job';
}
