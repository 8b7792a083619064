import { RequestMethod } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants.js';
import { IDEMPOTENT_METADATA } from '../resilience.constants.js';
import type { IdempotentOptions } from './idempotency-options.interface.js';
import { currentIdempotentExecution, type IdempotencyExecution } from './transaction-context.js';

/** Marks a handler wrapper and points at the function it wraps. @internal */
export const IDEMPOTENT_HANDLER_ORIGINAL = Symbol.for('nest-resilience.idempotent-handler-original');

/** Methods that are safe by definition: idempotency keys have no meaning there. @internal */
export const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);

const SAFE_REQUEST_METHODS: ReadonlySet<RequestMethod> = new Set([RequestMethod.GET, RequestMethod.HEAD, RequestMethod.OPTIONS]);

type AnyFunction = (this: unknown, ...args: unknown[]) => unknown;

/**
 * Makes a route honour the `Idempotency-Key` header: one execution per key, the stored response
 * replayed to retries (`Idempotent-Replayed: true`), 409 while the first request is in flight,
 * 422 when the key is reused for another request, 400 for a missing or malformed key. Options
 * override `forRoot({ idempotency })`; on a class they apply to every route of the controller
 * except GET, HEAD and OPTIONS routes, which are never affected.
 *
 * Besides recording the options, the decorator wraps the handler in a thin function whose only job
 * is to note "the handler body was entered". Guards, pipes (a `ValidationPipe` 400) and inner
 * interceptors run before that point; an error they raise is not an outcome of the handler, so it
 * is never stored: the key is released and a corrected retry with the same key runs normally (as
 * Stripe does). The wrapper keeps `this`, the name, the length and every metadata key of the
 * original, so other decorators and Nest see no difference.
 * @example
 * @Post()
 * @HttpCode(202)
 * @Idempotent({ scope: (req) => req.user.tenantId })
 * create(@Body() dto: CreateReportDto) { return this.reports.create(dto); }
 * @publicApi
 */
export function Idempotent(options: IdempotentOptions = {}): ClassDecorator & MethodDecorator {
  return ((target: object, propertyKey?: string | symbol, descriptor?: PropertyDescriptor) => {
    if (descriptor && typeof descriptor.value === 'function') {
      const wrapper = wrapHandler(descriptor.value as AnyFunction);
      Reflect.defineMetadata(IDEMPOTENT_METADATA, options, wrapper);
      descriptor.value = wrapper;
      return descriptor;
    }
    if (typeof target === 'function' && propertyKey === undefined) {
      Reflect.defineMetadata(IDEMPOTENT_METADATA, options, target);
      wrapRouteHandlers(target);
      return target;
    }
    throw new TypeError('@Idempotent() can only decorate a controller class or a route handler method.');
  }) as ClassDecorator & MethodDecorator;
}

/** Wraps every unsafe-method route handler of a controller class, inherited ones included. */
function wrapRouteHandlers(controller: Function): void {
  const prototype = controller.prototype as Record<string | symbol, unknown>;
  const seen = new Set<string | symbol>(['constructor']);
  for (let level: object | null = prototype; level && level !== Object.prototype; level = Object.getPrototypeOf(level)) {
    for (const name of Reflect.ownKeys(level)) {
      if (seen.has(name)) continue;
      seen.add(name);
      const descriptor = Object.getOwnPropertyDescriptor(level, name);
      const handler = descriptor?.value;
      if (typeof handler !== 'function' || !isUnsafeRoute(handler)) continue;
      Object.defineProperty(prototype, name, { ...descriptor, value: wrapHandler(handler as AnyFunction) });
    }
  }
}

function isUnsafeRoute(handler: Function): boolean {
  if (!Reflect.hasMetadata(PATH_METADATA, handler)) return false;
  const method = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
  return method === undefined || !SAFE_REQUEST_METHODS.has(method);
}

/**
 * Returns a function that marks the current idempotent execution as "handler entered" and tracks
 * until the handler's promise settles, then runs the original with the same `this` and arguments.
 * @internal
 */
export function wrapHandler(original: AnyFunction): AnyFunction {
  if (isIdempotentHandler(original)) return original;
  const wrapper = function (this: unknown, ...args: unknown[]): unknown {
    const execution = currentIdempotentExecution();
    if (!execution) return original.apply(this, args);
    execution.handlerEntered = true;
    execution.running++;
    let result: unknown;
    try {
      result = original.apply(this, args);
    } catch (error) {
      settle(execution);
      throw error;
    }
    // Only real promises are tracked: calling then() on a lazy thenable (a query builder) would run it twice.
    if (result instanceof Promise) {
      result.then(
        () => {
          execution.handlerSucceeded = true;
          settle(execution);
        },
        () => settle(execution),
      );
    } else {
      execution.handlerSucceeded = true;
      settle(execution);
    }
    return result;
  };
  Object.defineProperty(wrapper, 'name', { value: original.name, configurable: true });
  Object.defineProperty(wrapper, 'length', { value: original.length, configurable: true });
  for (const key of Reflect.getOwnMetadataKeys(original)) {
    Reflect.defineMetadata(key, Reflect.getOwnMetadata(key, original), wrapper);
  }
  Object.defineProperty(wrapper, IDEMPOTENT_HANDLER_ORIGINAL, { value: original });
  return wrapper;
}

/** Whether `handler` is a wrapper installed by `@Idempotent()`. @internal */
export function isIdempotentHandler(handler: Function): boolean {
  return typeof (handler as unknown as Record<symbol, unknown>)[IDEMPOTENT_HANDLER_ORIGINAL] === 'function';
}

function settle(execution: IdempotencyExecution): void {
  execution.running--;
  if (execution.running === 0) execution.onIdle?.();
}
