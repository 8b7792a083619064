import { RequestMethod } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants.js';
import { IDEMPOTENT_METADATA } from '../resilience.constants.js';
import type { IdempotentOptions } from '../core/idempotency/idempotency-options.interface.js';
import { recordAndBind } from '../engine/binding/bind.decorator.js';

const SAFE_REQUEST_METHODS: ReadonlySet<RequestMethod> = new Set([RequestMethod.GET, RequestMethod.HEAD, RequestMethod.OPTIONS]);

/**
 * Makes a route honour the `Idempotency-Key` header: one execution per key, the stored response
 * replayed to retries (`Idempotent-Replayed: true`), 409 while the first request is in flight,
 * 422 when the key is reused for another request, 400 for a missing or malformed key. Options
 * override `forRoot({ idempotency })`; on a class they apply to every route of the controller
 * except GET, HEAD and OPTIONS routes, which are never affected.
 *
 * The key is claimed right around the handler, after guards, interceptors and pipes: a request that
 * a guard or a `ValidationPipe` refuses never touches the store, and a corrected retry with the same
 * key runs normally (as Stripe does).
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

/** Whether a class-level `@Idempotent()` applies to `handler`: routes of methods other than GET, HEAD and OPTIONS. */
function isUnsafeRoute(handler: Function): boolean {
  if (!Reflect.hasMetadata(PATH_METADATA, handler)) return false;
  const method = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
  return method === undefined || !SAFE_REQUEST_METHODS.has(method);
}
