import { Injectable, Logger, Optional, RequestMethod, type OnModuleInit } from '@nestjs/common';
import { METHOD_METADATA } from '@nestjs/common/constants.js';
import { DiscoveryService } from '@nestjs/core';
import type { InstanceWrapper } from '@nestjs/core/injector/instance-wrapper.js';
import { boundMethodsOf, isObservableType, RESILIENCE_ENGINE, type BoundMethod } from './binding/bound-method.js';
import { CircuitBreakerService } from './circuit-breaker.service.js';
import type { ResilienceContextType } from './binding/context-type.js';
import { ContextAdapters } from '../contexts/context-adapters.js';
import { getRequestInfo } from '../context/resilience-context.js';
import { ResilienceConfigError } from '../core/errors.js';
import type { ResilienceEvent } from '../core/events.js';
import { requireSharedState } from '../core/shared-policy-state.js';
import { resolveRetryOptions, validatePipelineSpec } from '../core/validate.js';
import { IdempotentRoutes } from './idempotent-routes.js';
import { ResilienceEvents } from '../observability/resilience-events.js';
import { ResilienceTelemetry } from '../observability/resilience-telemetry.js';
import { IDEMPOTENT_METADATA, TIMEOUT_METADATA } from '../resilience.constants.js';
import { ResilienceEngine } from './resilience-engine.js';
import { RESILIENCE_METADATA_KEYS, type ResolvedTargetPolicy } from './resilience-options.resolver.js';
import { ResiliencePipelines } from './resilience-pipelines.js';

/** HTTP methods that may repeat side effects when run twice. */
const NON_IDEMPOTENT_METHODS = new Map<RequestMethod, string>([
  [RequestMethod.POST, 'POST'],
  [RequestMethod.PATCH, 'PATCH'],
  [RequestMethod.ALL, 'ALL'],
]);

/**
 * Start-up pass over the application:
 * - binds every controller and provider instance that has decorated methods to this application's
 *   {@link ResilienceEngine} (an own property of the instance, so two applications in one process
 *   never share state; request-scoped and transient instances are bound as Nest creates them);
 * - plans every decorated handler in its Nest context (HTTP route, microservice message or event
 *   handler, GraphQL resolver, WebSocket handler, queue processor, plain provider method) and
 *   validates its settings (`validatePipelineSpec`, unknown named policies, retried POST/PATCH
 *   routes without `@Idempotent()` or an explicit opt-in, `@Idempotent()` on streams or where no
 *   key can be read, synchronous decorated provider methods), so a bad configuration stops the
 *   application with a sentence that names the handler and the fix;
 * - loads what the contexts present render errors with (`@nestjs/microservices`, …);
 * - adds the request id and route (or context, operation and attributes) to every event.
 * Nothing is bound or checked for undecorated classes: they run exactly as without the module.
 * @internal
 */
@Injectable()
export class ResilienceBinder implements OnModuleInit {
  private initialized = false;

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly engine: ResilienceEngine,
    private readonly pipelines: ResiliencePipelines,
    private readonly contexts: ContextAdapters,
    private readonly idempotency: IdempotentRoutes,
    private readonly events: ResilienceEvents,
    private readonly breakers: CircuitBreakerService,
    @Optional() private readonly telemetry?: ResilienceTelemetry,
  ) {}

  async onModuleInit(): Promise<void> {
    if (this.initialized) return;
    this.initialized = true;
    this.events.addEnricher(enrichWithRequestInfo);
    this.telemetry?.setCircuitStateSource(() => this.breakers.list());
    const contexts = new Set<ResilienceContextType>();
    for (const wrapper of this.discovery.getControllers()) this.bindWrapper(wrapper, contexts, true);
    for (const wrapper of this.discovery.getProviders()) this.bindWrapper(wrapper, contexts, false);
    await this.contexts.prepare(contexts);
  }

  /**
   * Plans, validates and binds the decorated methods of one class; notes the contexts its handlers
   * serve (a controller's undecorated message handlers too: the exception filter renders the
   * library's errors reaching them).
   */
  private bindWrapper(wrapper: InstanceWrapper, contexts: Set<ResilienceContextType>, isController: boolean): void {
    const classRef = classOf(wrapper);
    if (classRef === undefined) return;
    if (isController) this.noteContexts(classRef, contexts);
    const methods = boundMethodsOf(classRef.prototype as object);
    if (methods.length === 0) return;
    for (const method of methods) {
      const plan = this.engine.planFor(classRef, method);
      if (plan.idempotent !== undefined) this.idempotency.validate(classRef, method, plan.idempotent);
      const type = plan.context?.adapter.type;
      if (type !== undefined) contexts.add(type);
      // an @Idempotent() provider method is still a provider method: its callers await what it returns
      if (type === undefined || type === 'method') this.validateMethod(classRef, method, type === 'method');
      else this.validateHandler(classRef, method, type);
    }
    this.bindInstances(wrapper);
  }

  /** The contexts of every handler a controller declares, decorated or not. */
  private noteContexts(classRef: Function, contexts: Set<ResilienceContextType>): void {
    const prototype = classRef.prototype as object;
    for (const name of Object.getOwnPropertyNames(prototype)) {
      const handler = Object.getOwnPropertyDescriptor(prototype, name)?.value as unknown;
      if (name !== 'constructor' && typeof handler === 'function') contexts.add(this.contexts.typeOf(classRef, handler, name));
    }
  }

  /** Binds the instances Nest made already, and those it makes later (request scope, transient). */
  private bindInstances(wrapper: InstanceWrapper): void {
    const engine = this.engine;
    const bind = (instance: unknown) => {
      if (typeof instance === 'object' && instance !== null && !Object.prototype.hasOwnProperty.call(instance, RESILIENCE_ENGINE)) {
        Object.defineProperty(instance, RESILIENCE_ENGINE, { value: engine, configurable: true });
      }
    };
    if (wrapper.isDependencyTreeStatic() && !wrapper.isTransient) {
      bind(wrapper.instance);
      return;
    }
    for (const host of wrapper.getStaticTransientInstances()) bind(host?.instance);
    const metatype = wrapper.metatype;
    if (typeof metatype !== 'function' || wrapper.inject) return;
    // Nest creates these instances later, from the wrapper's metatype: a subclass of this
    // application's own binds each one as it is constructed (the user's class is left unchanged).
    const Bound = class extends (metatype as new (...args: unknown[]) => object) {
      constructor(...args: unknown[]) {
        super(...args);
        bind(this);
      }
    };
    Object.defineProperty(Bound, 'name', { value: metatype.name });
    wrapper.metatype = Bound;
  }

  /** A handler Nest calls (a route, a message handler, a resolver, …): Nest awaits whatever it returns. */
  private validateHandler(classRef: Function, method: BoundMethod, type: ResilienceContextType): void {
    const target = this.pipelines.targetFor(classRef, method.wrapper, method.name);
    if (!target) return;
    if (type !== 'http') {
      this.validate(target, target.where);
      this.checkLastGoodNotIdempotent(target, undefined, classRef, method.wrapper);
      return;
    }
    const requestMethod = Reflect.getMetadata(METHOD_METADATA, method.wrapper) as RequestMethod | undefined;
    this.validate(target, `${RequestMethod[requestMethod ?? RequestMethod.GET] ?? 'GET'} ${target.where}`);
    warnBareTimeoutOnRetries(target, classRef, method.wrapper);
    this.checkRetriedUnsafeMethod(target, requestMethod, classRef, method.wrapper);
    this.checkLastGoodNotIdempotent(target, requestMethod ?? RequestMethod.GET, classRef, method.wrapper);
  }

  private validateMethod(classRef: Function, method: BoundMethod, idempotent: boolean): void {
    const target = this.pipelines.targetFor(classRef, method.wrapper, method.name);
    if (idempotent || (target !== undefined && hasOwnResilienceMetadata(method.wrapper))) assertAsynchronous(classRef, method, target?.where ?? `${classRef.name}.${method.name}`);
    if (target !== undefined) this.validate(target, target.where);
    if (target !== undefined) warnBareTimeoutOnRetries(target, classRef, method.wrapper);
    if (target !== undefined) this.checkLastGoodNotIdempotent(target, undefined, classRef, method.wrapper);
  }

  private validate(target: ResolvedTargetPolicy, where: string): void {
    const spec = this.pipelines.specFor(target);
    validatePipelineSpec(spec, where);
    // a per-call key builds its pipeline on the first call: check the backend here, at start-up
    requireSharedState(spec, where, this.pipelines.options.sharedState);
    // Create the pipeline now (not on the first call) so its breaker is listed from the start.
    if (!target.keyFn) this.pipelines.pipelineFor(target);
  }

  /**
   * A replay of an `@Idempotent()` route or method must answer what its handler produced: no stale
   * answer there (`requestMethod` undefined: a provider method or a message handler).
   */
  private checkLastGoodNotIdempotent(target: ResolvedTargetPolicy, requestMethod: RequestMethod | undefined, classRef: Function, handler: Function): void {
    if (target.fallback?.lastGood === undefined) return;
    const idempotent = Reflect.getMetadata(IDEMPOTENT_METADATA, handler) ?? Reflect.getMetadata(IDEMPOTENT_METADATA, classRef);
    if (idempotent === undefined || idempotent === false) return;
    if (requestMethod === undefined) {
      throw new ResilienceConfigError(
        `@Fallback({ lastGood }) on ${target.where} would answer an @Idempotent() call with an older result, ` +
          'which its key would then replay as if the method had produced it. Remove lastGood from this method, or remove @Idempotent().',
      );
    }
    throw new ResilienceConfigError(
      `@Fallback({ lastGood }) on ${RequestMethod[requestMethod] ?? 'GET'} ${target.where} would answer an @Idempotent() request with an older result, ` +
        'which its key would then replay as if the handler had produced it. Remove lastGood from this route, or remove @Idempotent().',
    );
  }

  private checkRetriedUnsafeMethod(target: ResolvedTargetPolicy, requestMethod: RequestMethod | undefined, classRef: Function, handler: Function): void {
    const verb = requestMethod === undefined ? undefined : NON_IDEMPOTENT_METHODS.get(requestMethod);
    if (!verb || !target.retry || target.allowNonIdempotentMethod) return;
    if (resolveRetryOptions(target.retry).maxAttempts <= 1) return;
    const idempotent = Reflect.getMetadata(IDEMPOTENT_METADATA, handler) ?? Reflect.getMetadata(IDEMPOTENT_METADATA, classRef);
    if (idempotent !== undefined && idempotent !== false) return;
    throw new ResilienceConfigError(
      `@Retryable() on ${verb} ${target.where} would run the handler again after a failure, which can repeat its side effects. ` +
        'Add @Idempotent() to the route, or opt in with @Retryable({ allowNonIdempotentMethod: true }) if repeating is safe.',
    );
  }
}

/**
 * `@Timeout(2_000)` reads as "2 s for the call", but on a target that retries it bounds each attempt
 * and the call may take its whole total (30 s by default): said once at start-up, with both
 * unambiguous spellings. The number keeps its meaning, so nothing changes for code that wanted it.
 */
function warnBareTimeoutOnRetries(target: ResolvedTargetPolicy, classRef: Function, handler: Function): void {
  const bare: unknown = Reflect.getMetadata(TIMEOUT_METADATA, handler) ?? Reflect.getMetadata(TIMEOUT_METADATA, classRef);
  if (typeof bare !== 'number' || !target.retry || resolveRetryOptions(target.retry).maxAttempts <= 1) return;
  new Logger('ResilienceModule').warn(
    `@Timeout(${bare}) on ${target.where} bounds each attempt, not the whole call, because ${target.where} also retries: the call may take up to its total timeout (${target.timeout.total} ms). ` +
      `Write @Timeout({ attempt: ${bare} }) to keep that meaning (and silence this warning), or @Timeout({ total: ${bare} }) to bound the whole call, retries included.`,
  );
}

/** The class of a wrapper's instances: its metatype, or the prototype of a factory's instance. */
function classOf(wrapper: InstanceWrapper): Function | undefined {
  const { metatype } = wrapper;
  if (typeof metatype === 'function' && !wrapper.inject && metatype.prototype) return metatype;
  const instance: unknown = wrapper.isDependencyTreeStatic() ? wrapper.instance : undefined;
  if (instance && typeof instance === 'object') {
    const prototype = Object.getPrototypeOf(instance) as { constructor?: Function } | null;
    if (prototype && prototype !== Object.prototype && typeof prototype.constructor === 'function') return prototype.constructor;
  }
  return undefined;
}

/**
 * Refuses a decorated provider method that is not visibly asynchronous. Its pipeline answers a
 * Promise (or an Observable), so a synchronous method would silently change its return type; what
 * a call returns is only known once it runs, so the rule is about the declaration: an `async`
 * method, or a written `Promise<…>` / `Observable<…>` return type. Routes are exempt: Nest awaits
 * whatever a handler returns.
 */
function assertAsynchronous(classRef: Function, method: BoundMethod, where: string): void {
  const returnType: unknown = Reflect.getMetadata('design:returntype', classRef.prototype as object, method.name);
  if (method.original.constructor?.name === 'AsyncFunction' || returnType === Promise || isObservableType(returnType)) return;
  const declared = typeof returnType === 'function' ? `declares the return type ${returnType.name}` : 'is neither async nor declares a Promise or Observable return type';
  throw new ResilienceConfigError(
    `The resilience decorators on ${where} run it through a pipeline that answers a Promise, but the method ${declared}, so its callers ` +
      'would get a Promise where they expect a plain value. Make the method async (or declare its return type as Promise<…> or Observable<…>), ' +
      'or move the decorators to the async method that calls it.',
  );
}

function hasOwnResilienceMetadata(method: Function): boolean {
  return RESILIENCE_METADATA_KEYS.some((key) => Reflect.hasOwnMetadata(key, method));
}

/**
 * Adds the request id and route of the HTTP request being served to an event that lacks them; in
 * other contexts, the request id, the context, the operation and its OpenTelemetry attributes.
 */
function enrichWithRequestInfo<E extends ResilienceEvent>(event: E): E {
  if (event.requestId !== undefined && event.route !== undefined) return event;
  const info = getRequestInfo();
  if (!info) return event;
  if (info.contextType === undefined) return { ...event, requestId: event.requestId ?? info.requestId, route: event.route ?? info.route };
  return { ...event, requestId: event.requestId ?? info.requestId, contextType: info.contextType, operation: info.operation, attributes: info.attributes };
}
