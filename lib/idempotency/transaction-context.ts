import { createHash } from 'node:crypto';
import { createParamDecorator } from '@nestjs/common';
import { currentInFrame, runInFrame } from '../context/context-frame.js';

/**
 * State of one idempotent execution, shared between the interceptor (which creates it) and the
 * handler wrapper installed by `@Idempotent()` (which marks it).
 * @internal
 */
export interface IdempotencyExecution {
  /** Set by the handler wrapper when the handler body is entered (after guards, pipes, inner interceptors). */
  handlerEntered: boolean;
  /** Set when a handler invocation returned (or resolved) without throwing: the value is the handler's own. */
  handlerSucceeded: boolean;
  /** Handler invocations whose returned promise has not settled yet. */
  running: number;
  /** Called each time `running` drops to 0. */
  onIdle?: () => void;
  /** The store's transaction in transactional mode. */
  transaction?: unknown;
  /** Key, scope and fence of the claim, for {@link currentIdempotencyContext}. */
  info?: IdempotencyContext;
}

/**
 * What a handler can learn about the idempotent request it serves.
 * @publicApi
 */
export interface IdempotencyContext {
  /** The client's key. */
  readonly key: string;
  /** The scope (tenant/user) of the key, `''` when global. */
  readonly scope: string;
  /** Stable id of the record (hash of namespace, scope and key). */
  readonly recordId: string;
  /** Fencing token: +1 on every takeover. Pass it to downstream systems that can reject stale writers. */
  readonly fence: number;
  /**
   * A key for a call to another idempotent API (a payment provider, …), stable for this record
   * and `name`, so a re-execution after a takeover sends the same key downstream and cannot act twice.
   */
  downstreamKey(name: string): string;
}

/** @internal runs `fn` with `execution` as the current idempotent execution. */
export function runIdempotentExecution<T>(execution: IdempotencyExecution, fn: () => T): T {
  return runInFrame('idempotency', execution, fn);
}

/** @internal the execution of the request being served, if any. */
export function currentIdempotentExecution(): IdempotencyExecution | undefined {
  return currentInFrame('idempotency');
}

/** @internal builds the public context of a claim. */
export function idempotencyContextOf(key: string, scope: string, recordId: string, fence: number): IdempotencyContext {
  return {
    key,
    scope,
    recordId,
    fence,
    downstreamKey: (name) => createHash('sha256').update(`${recordId}:${name}`).digest('hex').slice(0, 48),
  };
}

/**
 * The transaction of the current `@Idempotent({ transactional: true })` request (a TypeORM
 * `EntityManager` with `TypeOrmIdempotencyStore`), or `undefined` elsewhere. Writes made through it
 * commit together with the idempotency record: exactly once, or not at all.
 * @example
 * const manager = currentIdempotencyTransaction<EntityManager>();
 * await manager!.insert(Report, report);
 * @publicApi
 */
export function currentIdempotencyTransaction<T = unknown>(): T | undefined {
  return currentInFrame('idempotency')?.transaction as T | undefined;
}

/**
 * Key, scope and fencing token of the idempotent request being served, or `undefined` outside one.
 * @example
 * const ctx = currentIdempotencyContext();
 * await payments.charge(amount, { idempotencyKey: ctx?.downstreamKey('charge') });
 * @publicApi
 */
export function currentIdempotencyContext(): IdempotencyContext | undefined {
  return currentInFrame('idempotency')?.info;
}

/**
 * Injects the transaction of a `@Idempotent({ transactional: true })` route into a handler
 * parameter (a TypeORM `EntityManager` with `TypeOrmIdempotencyStore`; `undefined` on routes that
 * are not transactional).
 * @example
 * @Post()
 * @Idempotent({ transactional: true })
 * create(@Body() dto: CreateReportDto, @IdempotencyTransaction() manager: EntityManager) {
 *   return manager.save(Report, manager.create(Report, dto));
 * }
 * @publicApi
 */
export const IdempotencyTransaction: () => ParameterDecorator = createParamDecorator(() => currentIdempotencyTransaction());
