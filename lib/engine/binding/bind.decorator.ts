import { bindClass, bindMethod } from './bound-method.js';

/**
 * A decorator that records `value` under `key` (on the method, or on the class) and binds the
 * decorated method (or the methods a class-level decorator applies to) to the engine. Every
 * resilience decorator is one: this is what makes a route or method use the library, and nothing
 * else does (undecorated routes run exactly as without the module).
 * @internal
 */
export function recordAndBind(
  key: string,
  value: unknown,
  include?: (method: Function, name: string | symbol) => boolean,
): MethodDecorator & ClassDecorator {
  return ((target: object, propertyKey?: string | symbol, descriptor?: PropertyDescriptor) => {
    if (descriptor !== undefined && propertyKey !== undefined) {
      if (typeof descriptor.value !== 'function') {
        throw new TypeError(`A resilience decorator was put on ${String(propertyKey)}, which is not a method. Put it on a method or a class.`);
      }
      Reflect.defineMetadata(key, value, descriptor.value as object);
      return bindMethod(target, propertyKey, descriptor);
    }
    Reflect.defineMetadata(key, value, target);
    bindClass(target as Function, include);
    return target;
  }) as MethodDecorator & ClassDecorator;
}
