import { Injectable, Optional, RequestMethod, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { METHOD_METADATA } from '@nestjs/common/constants.js';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import type { InstanceWrapper } from '@nestjs/core/injector/instance-wrapper.js';
import { Observable } from 'rxjs';
import { currentResilienceStore, getRequestInfo, type ResilienceContextStore } from './context/resilience-context.js';
import { ResilienceConfigError } from './core/errors.js';
import { AttemptSettledError } from './core/timeout.policy.js';
import { resolveRetryOptions, validatePipelineSpec } from './core/validate.js';
import { CircuitBreakerService } from './circuit-breaker.service.js';
import { ResilienceEvents } from './observability/resilience-events.js';
import { ResilienceTelemetry } from './observability/resilience-telemetry.js';
import { IDEMPOTENT_METADATA } from './resilience.constants.js';
import type { ResolvedTargetPolicy } from './resilience-options.resolver.js';
import { executeObservable, executePromise, ResiliencePipelines, type PipelineCall } from './resilience-pipelines.js';

/** Marks a wrapped method; its value is the original function. */
const ORIGINAL_METHOD = Symbol.for('nest-resilience.original-method');

/** Lifecycle hooks are never wrapped by a class-level decorator. */
const LIFECYCLE_HOOKS = new Set([
  'constructor',
  'onModuleInit',
  'onApplicationBootstrap',
  'onModuleDestroy',
  'beforeApplicationShutdown',
  'onApplicationShutdown',
]);

/** HTTP methods that may repeat side effects when run twice. */
const NON_IDEMPOTENT_METHODS = new Map<RequestMethod, string>([
  [RequestMethod.POST, 'POST'],
  [RequestMethod.PATCH, 'PATCH'],
  [RequestMethod.ALL, 'ALL'],
]);

/** Return types that show a method is synchronous: it cannot be wrapped without changing its type. */
const SYNC_RETURN_TYPES = new Set<unknown>([Number, String, Boolean, Symbol, Array, BigInt]);

/**
 * The original of a method wrapped by the library, or the method itself.
 * @internal
 */
export function originalMethod<T extends Function>(method: T): T {
  return ((method as unknown as Record<symbol, T>)[ORIGINAL_METHOD] ?? method) as T;
}

/**
 * Start-up pass over the application:
 * - validates the resilience settings of every decorated controller route (`validatePipelineSpec`,
 *   unknown named policies, retried POST/PATCH routes without `@Idempotent()` or an explicit
 *   opt-in), so a bad configuration stops the application with a sentence that names the fix;
 * - wraps the prototype methods of `@Injectable()` providers that carry resilience decorators, so
 *   service methods get the same pipeline as routes (once per class: request-scoped and transient
 *   instances share the wrapper, and their state lives in the shared `PolicyRegistry`);
 * - adds the request id and route to every event.
 * @internal
 */
@Injectable()
export class ResilienceExplorer implements OnModuleInit, OnModuleDestroy {
  private initialized = false;
  private readonly owned = new Set<object>();

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly pipelines: ResiliencePipelines,
    private readonly events: ResilienceEvents,
    private readonly breakers: CircuitBreakerService,
    @Optional() private readonly telemetry?: ResilienceTelemetry,
  ) {}

  onModuleInit(): void {
    if (this.initialized) return;
    this.initialized = true;
    this.events.addEnricher(enrichWithRequestInfo);
    this.telemetry?.setCircuitStateSource(() => this.breakers.list());
    this.exploreControllers();
    this.exploreProviders();
  }

  private exploreControllers(): void {
    const seen = new Set<object>();
    for (const wrapper of this.discovery.getControllers()) {
      const classRef = wrapper.metatype;
      if (typeof classRef !== 'function' || seen.has(classRef)) continue;
      seen.add(classRef);
      const prototype = classRef.prototype as Record<string, unknown>;
      for (const name of this.scanner.getAllMethodNames(prototype)) {
        const handler = prototype[name];
        if (typeof handler !== 'function') continue;
        const requestMethod = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
        if (requestMethod === undefined) continue;
        const target = this.pipelines.targetFor(classRef, handler, name);
        if (!target) continue;
        const verb = RequestMethod[requestMethod] ?? 'GET';
        this.validate(target, `${verb} ${target.where}`);
        this.checkIdempotency(target, requestMethod, classRef, handler);
      }
    }
  }

  private exploreProviders(): void {
    const seen = new Set<object>();
    for (const wrapper of this.discovery.getProviders()) {
      const prototype = prototypeOf(wrapper);
      if (!prototype || seen.has(prototype)) continue;
      seen.add(prototype);
      const classRef = prototype.constructor as Function;
      for (const name of this.scanner.getAllMethodNames(prototype)) this.wrapMethod(classRef, prototype, name);
    }
  }

  private validate(target: ResolvedTargetPolicy, where: string): void {
    validatePipelineSpec(this.pipelines.specFor(target), where);
    // Create the pipeline now (not on the first call) so its breaker is listed from the start.
    if (!target.keyFn) this.pipelines.pipelineFor(target);
  }

  private checkIdempotency(target: ResolvedTargetPolicy, requestMethod: RequestMethod, classRef: Function, handler: Function): void {
    const verb = NON_IDEMPOTENT_METHODS.get(requestMethod);
    if (!verb || !target.retry || target.allowNonIdempotentMethod) return;
    if (resolveRetryOptions(target.retry).maxAttempts <= 1) return;
    const idempotent = Reflect.getMetadata(IDEMPOTENT_METADATA, handler) ?? Reflect.getMetadata(IDEMPOTENT_METADATA, classRef);
    if (idempotent !== undefined && idempotent !== false) return;
    throw new ResilienceConfigError(
      `@Retryable() on ${verb} ${target.where} would run the handler again after a failure, which can repeat its side effects. ` +
        'Add @Idempotent() to the route, or opt in with @Retryable({ allowNonIdempotentMethod: true }) if repeating is safe.',
    );
  }

  private wrapMethod(classRef: Function, prototype: Record<string, unknown>, name: string): void {
    const descriptor = Object.getOwnPropertyDescriptor(prototype, name) ?? findDescriptor(prototype, name);
    const current = descriptor?.value;
    if (typeof current !== 'function') return;
    const method = originalMethod(current);
    const target = this.pipelines.targetFor(classRef, method, name);
    if (!target) return;
    const declared = Object.keys(readOwnMetadata(method)).length > 0;
    const returnType: unknown = Reflect.getMetadata('design:returntype', prototype, name);
    if (!declared) {
      // A class-level decorator only applies to methods that are visibly asynchronous.
      if (LIFECYCLE_HOOKS.has(name)) return;
      if (!isAsyncFunction(method) && !isPromiseType(returnType) && !isObservableType(returnType)) return;
    } else if (SYNC_RETURN_TYPES.has(returnType)) {
      throw new ResilienceConfigError(
        `The resilience decorators on ${target.where} need an asynchronous method, but it returns ${(returnType as Function).name}. ` +
          'Make it async (return a Promise) or return an Observable.',
      );
    }
    this.validate(target, target.where);
    this.own(prototype);
    if (current !== method) return; // already wrapped by another application in this process
    const wrapper = createMethodWrapper(classRef, method, name, isObservableType(returnType));
    copyMethodMetadata(method, wrapper);
    Object.defineProperty(wrapper, 'name', { value: method.name, configurable: true });
    Object.defineProperty(wrapper, 'length', { value: method.length, configurable: true });
    Object.defineProperty(wrapper, ORIGINAL_METHOD, { value: method });
    Object.defineProperty(prototype, name, { ...descriptor, value: wrapper });
  }

  /** Makes this application the one whose state the wrapped methods of `prototype` use by default. */
  private own(prototype: object): void {
    if (this.owned.has(prototype)) return;
    this.owned.add(prototype);
    const owners = prototypeOwners.get(prototype) ?? [];
    prototypeOwners.set(prototype, [...owners, this.pipelines]);
  }

  /** Hands the wrapped methods back to the application started before this one (tests). */
  onModuleDestroy(): void {
    for (const prototype of this.owned) {
      const owners = (prototypeOwners.get(prototype) ?? []).filter((owner) => owner !== this.pipelines);
      if (owners.length > 0) prototypeOwners.set(prototype, owners);
      else prototypeOwners.delete(prototype);
    }
    this.owned.clear();
  }
}

/**
 * Applications (their pipelines) that explored a prototype, latest last. A wrapped method runs with
 * the application serving the current request (from the resilience context), else the latest.
 */
const prototypeOwners = new WeakMap<object, ResiliencePipelines[]>();

function ownerOf(self: unknown, prototype: object): ResiliencePipelines | undefined {
  const fromRequest = currentResilienceStore()?.owner;
  if (fromRequest instanceof ResiliencePipelines) return fromRequest;
  const owners =
    prototypeOwners.get(prototype) ??
    (typeof self === 'object' && self !== null ? prototypeOwners.get(Object.getPrototypeOf(self) as object) : undefined);
  return owners?.[owners.length - 1];
}

/**
 * The replacement of a decorated provider method: runs the original through the pipeline of the
 * application that owns the call, preserving `this`, the arguments and the return type.
 */
function createMethodWrapper(classRef: Function, method: Function, name: string, returnsObservable: boolean): Function {
  const prototype = classRef.prototype as object;
  return function (this: unknown, ...args: unknown[]): unknown {
    const pipelines = ownerOf(this, prototype);
    if (!pipelines || !pipelines.options.enabled) return method.apply(this, args);
    const target = pipelines.targetFor(classRef, method, name);
    if (!target) return method.apply(this, args);
    const self = this;
    const parent = liveParentOf(currentResilienceStore());
    const request = getRequestInfo();
    const key = pipelines.keyFor(target, args);
    const pipeline = pipelines.pipelineFor(target, key);
    const { clock } = pipelines.env;
    const call: PipelineCall = {
      // the parent attempt's token: reading `parent.signal` would create its AbortSignal
      cancellation: parent?.cancellation,
      signal: parent !== undefined && parent.cancellation === undefined ? parent.signal : undefined,
      deadline: parent?.deadline,
      args,
      wrapAttempt: pipelines.wrapAttempt,
      store: { policy: key, clock, owner: pipelines, request: request && { info: () => request } },
    };
    const work = () => method.apply(self, args);
    if (returnsObservable) return executeObservable(pipeline, work, { ...call, mapError: (error) => error });
    return executePromise(pipeline, work, call);
  };
}

/**
 * The attempt a call runs under, unless that attempt already settled: a job queued by a request
 * (`setImmediate`, an after-commit hook) runs after the attempt that queued it ended, and must not
 * inherit its aborted signal or its deadline. It keeps the request id (read separately).
 */
function liveParentOf(store: ResilienceContextStore | undefined): ResilienceContextStore | undefined {
  const reason = store?.cancellation?.aborted ? store.cancellation.reason : undefined;
  return reason instanceof AttemptSettledError ? undefined : store;
}

/** Adds `requestId` and `route` of the request being served to an event that lacks them. */
function enrichWithRequestInfo<E extends { requestId?: string; route?: string }>(event: E): E {
  if (event.requestId !== undefined && event.route !== undefined) return event;
  const info = getRequestInfo();
  if (!info) return event;
  return { ...event, requestId: event.requestId ?? info.requestId, route: event.route ?? info.route };
}

function prototypeOf(wrapper: InstanceWrapper): Record<string, unknown> | undefined {
  const { metatype } = wrapper;
  if (typeof metatype === 'function' && !wrapper.inject && metatype.prototype) {
    return metatype.prototype as Record<string, unknown>;
  }
  const instance: unknown = wrapper.isDependencyTreeStatic() ? wrapper.instance : undefined;
  if (instance && typeof instance === 'object') {
    const prototype = Object.getPrototypeOf(instance) as Record<string, unknown> | null;
    if (prototype && prototype !== Object.prototype) return prototype;
  }
  return undefined;
}

function findDescriptor(prototype: object, name: string): PropertyDescriptor | undefined {
  for (let current = Object.getPrototypeOf(prototype); current && current !== Object.prototype; current = Object.getPrototypeOf(current)) {
    const descriptor = Object.getOwnPropertyDescriptor(current, name);
    if (descriptor) return { ...descriptor, configurable: true, writable: true };
  }
  return undefined;
}

function readOwnMetadata(method: Function): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const key of Reflect.getOwnMetadataKeys(method)) {
    if (typeof key === 'string' && key.startsWith('nest-resilience:')) values[key] = Reflect.getOwnMetadata(key, method);
  }
  return values;
}

/** Copies every Reflect metadata entry (Swagger, route, guards, …) from the original to the wrapper. */
function copyMethodMetadata(from: Function, to: Function): void {
  for (const key of Reflect.getOwnMetadataKeys(from)) {
    Reflect.defineMetadata(key, Reflect.getOwnMetadata(key, from), to);
  }
}

function isAsyncFunction(method: Function): boolean {
  return method.constructor?.name === 'AsyncFunction' || method.constructor?.name === 'AsyncGeneratorFunction';
}

function isPromiseType(type: unknown): boolean {
  return type === Promise;
}

function isObservableType(type: unknown): boolean {
  return type === Observable || (typeof type === 'function' && type.name === 'Observable');
}
