import { contextParameter } from '../engine/binding/bound-method.js';
import { currentInFrame, runInFrame } from '../context/context-frame.js';
import type { IdempotencyContext, IdempotencyExecution } from '../core/idempotency/idempotency-core.interface.js';

export { type IdempotencyContext, type IdempotencyExecution } from '../core/idempotency/idempotency-core.interface.js';

/** @internal runs `fn` with `execution` as the current idempotent execution. */
export function runIdempotentExecution<T>(execution: IdempotencyExecution, fn: () => T): T {
  return runInFrame('idempotency', execution, fn);
}

/** @internal the execution of the request being served, if any. */
export function currentIdempotentExecution(): IdempotencyExecution | undefined {
  return currentInFrame('idempotency');
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
export const IdempotencyTransaction: () => ParameterDecorator = contextParameter(currentIdempotencyTransaction);
