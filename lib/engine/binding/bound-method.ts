import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import { PATH_METADATA, ROUTE_ARGS_METADATA } from '@nestjs/common/constants.js';
import { Observable } from 'rxjs';
import { isContextHandler } from './context-type.js';

/**
 * The own property of a controller or provider instance that holds the engine of the application
 * it belongs to. Set when the application starts (`ResilienceBinder`), per instance: two
 * applications in one process never share it.
 * @internal
 */
export const RESILIENCE_ENGINE: unique symbol = Symbol('nest-resilience.engine');

/** Marks a bound method's wrapper and points at its {@link BoundMethod}. */
const BOUND_METHOD = Symbol.for('nest-resilience.bound-method');

/**
 * Runs the calls of bound methods: implemented by the engine of each application.
 * @internal
 */
export interface MethodInvoker {
  /** Runs one call of `method` on `self` with `args` (the hidden route argument still in place). */
  invoke(self: object, method: BoundMethod, args: unknown[]): unknown;
}

/**
 * A decorated method as declared: its original function, where Nest puts the hidden route
 * argument, and what it returns. Shared by every application; holds no state of any of them.
 * @internal
 */
export interface BoundMethod {
  /** The method's name on its class. */
  readonly name: string;
  /** The function the class declared. */
  readonly original: Function;
  /** The function installed in its place: it carries every metadata key of the original. */
  readonly wrapper: Function;
  /** Index of the hidden argument through which Nest hands a route call its {@link RouteInvocation}. */
  readonly invocationIndex: number;
  /** Whether the method declares an `Observable` return type (its attempts end at the first emission). */
  readonly returnsObservable: boolean;
  /**
   * Whether the method has parameter decorators of its own (`@Payload()`, `@Body()`, …). Without
   * any, Nest hands a message handler, resolver or gateway handler its context's arguments as they
   * are (`data, ctx`); the hidden argument would stop that, so the engine passes them itself.
   */
  readonly declaresParameters: boolean;
}

/**
 * What Nest hands a bound route handler through its hidden argument: the HTTP context of the call.
 * A class of its own, so an ordinary argument can never be taken for it.
 * @internal
 */
export class RouteInvocation {
  constructor(readonly context: ExecutionContext) {}
}

/**
 * What Nest resolves a parameter of a bound route to when its value only exists once the library
 * runs (the attempt's signal, the idempotency transaction): Nest resolves parameters once, before
 * the handler's first attempt, so the engine fills the slot in before each call of the handler.
 * @internal
 */
export class ParameterSlot {
  constructor(
    /** Reads the value in the context of the call (the attempt's, the idempotent execution's). */
    readonly resolve: () => unknown,
  ) {}
}

/**
 * A parameter decorator whose value comes from the library's context: `read()` in a bound route's
 * call, or at once elsewhere (an undecorated route: nothing to wait for).
 * @internal
 */
export function contextParameter(read: () => unknown): () => ParameterDecorator {
  const slot = new ParameterSlot(read);
  return createParamDecorator((_data: unknown, context: ExecutionContext) => (boundMethodOf(context.getHandler()) ? slot : read()));
}

const RouteInvocationParam = createParamDecorator((_data: unknown, context: ExecutionContext) => new RouteInvocation(context));

/** Lifecycle hooks are never bound by a class-level decorator. */
const LIFECYCLE_HOOKS = new Set<string | symbol>([
  'constructor',
  'onModuleInit',
  'onApplicationBootstrap',
  'onModuleDestroy',
  'beforeApplicationShutdown',
  'onApplicationShutdown',
]);

/** The {@link BoundMethod} behind `fn`, when `fn` is a bound method's wrapper. @internal */
export function boundMethodOf(fn: unknown): BoundMethod | undefined {
  return typeof fn === 'function' ? ((fn as unknown as Record<symbol, BoundMethod | undefined>)[BOUND_METHOD] ?? undefined) : undefined;
}

/** The bound methods of a prototype, inherited ones included. @internal */
export function boundMethodsOf(prototype: object): BoundMethod[] {
  const methods: BoundMethod[] = [];
  const seen = new Set<string | symbol>(['constructor']);
  for (let level: object | null = prototype; level && level !== Object.prototype; level = Object.getPrototypeOf(level)) {
    for (const name of Reflect.ownKeys(level)) {
      if (seen.has(name)) continue;
      seen.add(name);
      const method = boundMethodOf(Object.getOwnPropertyDescriptor(level, name)?.value);
      if (method) methods.push(method);
    }
  }
  return methods;
}

/** The function a class declared for `fn` (itself when `fn` is not a bound wrapper). @internal */
export function originalOf<T extends Function>(fn: T): T {
  return (boundMethodOf(fn)?.original ?? fn) as T;
}

/**
 * Binds one decorated method: replaces it with a wrapper that runs each call through the engine
 * of the application the instance belongs to (a plain call when there is none: the module is not
 * imported, or the instance was made by hand), and gives route handlers a hidden argument that
 * carries their HTTP context. Done once per method, at decoration time; the wrapper keeps `this`,
 * the name, the length and every metadata key of the original, so Nest and other decorators see
 * the same method.
 * @internal
 */
export function bindMethod(prototype: object, name: string | symbol, descriptor: PropertyDescriptor): PropertyDescriptor {
  const current: unknown = descriptor.value;
  if (typeof current !== 'function' || boundMethodOf(current)) return descriptor;
  const original = current;
  const invocationIndex = hiddenArgumentIndex(prototype, name, original);
  const declaresParameters = Object.keys(Reflect.getMetadata(ROUTE_ARGS_METADATA, prototype.constructor, name) ?? {}).length > 0;
  const returnType: unknown = Reflect.getMetadata('design:returntype', prototype, name);
  const wrapper = function (this: unknown, ...args: unknown[]): unknown {
    const engine = (this as Record<symbol, MethodInvoker | undefined> | null | undefined)?.[RESILIENCE_ENGINE];
    if (engine !== undefined) return engine.invoke(this as object, method, args);
    if (args.length > invocationIndex && args[invocationIndex] instanceof RouteInvocation) args.length = invocationIndex;
    return original.apply(this, args);
  };
  const method: BoundMethod = {
    name: String(name),
    original,
    wrapper,
    invocationIndex,
    returnsObservable: isObservableType(returnType),
    declaresParameters,
  };
  Object.defineProperty(wrapper, 'name', { value: original.name, configurable: true });
  Object.defineProperty(wrapper, 'length', { value: original.length, configurable: true });
  for (const key of Reflect.getOwnMetadataKeys(original)) Reflect.defineMetadata(key, Reflect.getOwnMetadata(key, original), wrapper);
  Object.defineProperty(wrapper, BOUND_METHOD, { value: method });
  RouteInvocationParam()(prototype, name, invocationIndex);
  descriptor.value = wrapper;
  return descriptor;
}

/**
 * Binds the methods a class-level decorator applies to: every handler Nest calls (a route, a
 * message or event handler, a resolver, a gateway handler), and every method that is visibly
 * asynchronous (an async function, or a declared `Promise` or `Observable` return type),
 * inherited ones included; lifecycle hooks never. `include` narrows the choice (`@Idempotent()`
 * binds unsafe-method routes and message handlers only).
 * @internal
 */
export function bindClass(classRef: Function, include: (method: Function, name: string | symbol) => boolean = () => true): void {
  const prototype = classRef.prototype as object;
  const seen = new Set<string | symbol>();
  for (let level: object | null = prototype; level && level !== Object.prototype; level = Object.getPrototypeOf(level)) {
    for (const name of Reflect.ownKeys(level)) {
      if (seen.has(name)) continue;
      seen.add(name);
      if (LIFECYCLE_HOOKS.has(name)) continue;
      const descriptor = Object.getOwnPropertyDescriptor(level, name);
      const method: unknown = descriptor?.value;
      if (typeof method !== 'function' || boundMethodOf(method) || !include(method, name)) continue;
      if (!isContextHandler(classRef, method, name) && !isVisiblyAsync(method, Reflect.getMetadata('design:returntype', level, name))) continue;
      // paramtypes and return type live on the declaring prototype: bind there when it is the class's own
      const bound = bindMethod(level === prototype ? prototype : inheritMetadata(prototype, level, name), name, { ...descriptor, configurable: true, writable: true });
      Object.defineProperty(prototype, name, bound);
    }
  }
}

/** Copies the design-time metadata of an inherited method onto the subclass prototype, which gets the wrapper. */
function inheritMetadata(prototype: object, declaring: object, name: string | symbol): object {
  for (const key of Reflect.getOwnMetadataKeys(declaring, name)) {
    if (!Reflect.hasOwnMetadata(key, prototype, name)) Reflect.defineMetadata(key, Reflect.getOwnMetadata(key, declaring, name), prototype, name);
  }
  return prototype;
}

/** Whether `method` is a controller route handler (it carries a route path). @internal */
export function isRouteHandler(method: Function): boolean {
  return Reflect.hasMetadata(PATH_METADATA, method);
}

/**
 * The index after every declared parameter: past the parameter decorators already applied (they
 * run before method decorators), the declared parameter types and the function's own length.
 */
function hiddenArgumentIndex(prototype: object, name: string | symbol, method: Function): number {
  const routeArgs = (Reflect.getMetadata(ROUTE_ARGS_METADATA, prototype.constructor, name) ?? {}) as Record<string, { index: number }>;
  const paramTypes = (Reflect.getMetadata('design:paramtypes', prototype, name) ?? []) as unknown[];
  let index = Math.max(paramTypes.length, method.length);
  for (const entry of Object.values(routeArgs)) index = Math.max(index, entry.index + 1);
  return index;
}

function isVisiblyAsync(method: Function, returnType: unknown): boolean {
  const kind = method.constructor?.name;
  return kind === 'AsyncFunction' || kind === 'AsyncGeneratorFunction' || returnType === Promise || isObservableType(returnType);
}

/** Whether a declared return type is rxjs's `Observable` (also from another copy of rxjs). @internal */
export function isObservableType(type: unknown): boolean {
  return type === Observable || (typeof type === 'function' && type.name === 'Observable');
}
