import { RequestMethod } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants.js';
import { IDEMPOTENT_METADATA } from '../resilience.constants.js';
import type { IdempotentOptions } from '../core/idempotency/idempotency-options.interface.js';
import { recordAndBind } from '../engine/binding/bind.decorator.js';
import { MICROSERVICE_PATTERN } from '../engine/binding/context-type.js';
import { bindClass } from '../engine/binding/bound-method.js';

const SAFE_REQUEST_METHODS: ReadonlySet<RequestMethod> = new Set([RequestMethod.GET, RequestMethod.HEAD, RequestMethod.OPTIONS]);

/**
 * Makes a route honour the `Idempotency-Key` header: one execution per key, the stored response
 * replayed to retries (`Idempotent-Replayed: true`), 409 while the first request is in flight,
 * 422 when the key is reused for another request, 400 for a missing or malformed key. Options
 * override `forRoot({ idempotency })`; on a class they apply to every route of the controller
 * except GET, HEAD and OPTIONS routes, which are never affected, and to every message and event
 * handler.
 *
 * On a microservice handler (`@MessagePattern`, `@EventPattern`) the key comes from
 * `key: (data, ctx) => …` or, by default, from the message's `idempotency-key` metadata or header;
 * the fingerprint is the payload's. A duplicate message gets the stored answer, a duplicate event
 * is acknowledged without running the handler, and a duplicate arriving while the first one runs
 * waits for it: never two runs at once. On a BullMQ processor (on the class or on `process`) the
 * key is the job's deduplication id or id, or `key: (job) => …`; a duplicate job completes with
 * the stored value without running. On a provider method it needs `key: (...args) => …` (read
 * from the method's arguments). Where no key can be read (GraphQL resolvers, gateways, a provider
 * method without `key`), the application refuses to start.
 *
 * The key is claimed right around the handler, after guards, interceptors and pipes: a request that
 * a guard or a `ValidationPipe` refuses never touches the store, and a corrected retry with the same
 * key runs normally (as Stripe does).
 * @example
 * @EventPattern('payment.settled')
 * @Idempotent({ key: (event: PaymentSettled) => event.eventId })
 * settle(@Payload() event: PaymentSettled) { … }
 * @example
 * @Post()
 * @HttpCode(202)
 * @Idempotent({ scope: (req) => req.user.tenantId })
 * create(@Body() dto: CreateReportDto) { return this.reports.create(dto); }
 * @publicApi
 */
export function Idempotent(options: IdempotentOptions = {}): ClassDecorator & MethodDecorator {
  const decorate = recordAndBind(IDEMPOTENT_METADATA, options, isUnsafeRoute);
  return ((target: object, propertyKey?: string | symbol, descriptor?: PropertyDescriptor) => {
    const result = decorate(target as Function, propertyKey as string | symbol, descriptor as PropertyDescriptor);
    // a BullMQ processor's `process` (its @Processor() metadata is written after this decorator runs)
    if (descriptor === undefined && typeof target === 'function' && isWorkerHost(target)) bindClass(target, (_method, name) => name === 'process');
    return result;
  }) as ClassDecorator & MethodDecorator;
}

/** Whether `classRef` extends `@nestjs/bullmq`'s `WorkerHost` (a `process` method and a `worker` accessor), read by shape. */
function isWorkerHost(classRef: Function): boolean {
  let hasWorker = false;
  for (let level: object | null = classRef.prototype as object; level && level !== Object.prototype; level = Object.getPrototypeOf(level)) {
    if (typeof Object.getOwnPropertyDescriptor(level, 'worker')?.get === 'function') hasWorker = true;
  }
  return hasWorker && typeof (classRef.prototype as { process?: unknown }).process === 'function';
}

/**
 * Whether a class-level `@Idempotent()` applies to `handler`: routes of methods other than GET,
 * HEAD and OPTIONS, and microservice message and event handlers.
 */
function isUnsafeRoute(handler: Function): boolean {
  if (Reflect.hasMetadata(MICROSERVICE_PATTERN, handler)) return true;
  if (!Reflect.hasMetadata(PATH_METADATA, handler)) return false;
  const method = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
  return method === undefined || !SAFE_REQUEST_METHODS.has(method);
}
