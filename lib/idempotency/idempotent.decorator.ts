import { RequestMethod } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants.js';
import { IDEMPOTENT_METADATA } from '../resilience.constants.js';
import type { IdempotentOptions } from '../core/idempotency/idempotency-options.interface.js';
import { recordAndBind } from '../engine/binding/bind.decorator.js';
import { MICROSERVICE_PATTERN } from '../engine/binding/context-type.js';

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
 * waits for it: never two runs at once. Where no key can be read (GraphQL resolvers, gateways,
 * queue processors, plain provider methods), the application refuses to start.
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
  return recordAndBind(IDEMPOTENT_METADATA, options, isUnsafeRoute);
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
