import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { Agent, request as undiciRequest, type Dispatcher } from 'undici';
import { currentInFrame, frameDeadlineContext } from '../context/context-frame.js';
import { getRequestInfo } from '../context/resilience-context.js';
import { Cancellation } from '../core/cancellation.js';
import { abortErrorOf } from '../core/classify.js';
import { systemClock } from '../core/clock.js';
import { DeadlineQueue } from '../core/deadline-queue.js';
import { ResilienceConfigError } from '../core/errors.js';
import type { ResilienceEventSink } from '../core/events.js';
import { chaosAnswerOf } from '../core/chaos-step.js';
import type { ChaosControl, ChaosHttpFault, PipelineChaos } from '../core/fault-injection.js';
import type { PipelineSpec } from '../core/options.js';
import { createPipeline, type Pipeline } from '../core/pipeline.js';
import type { PolicyEnvironment } from '../core/policy.js';
import { PolicyRegistry } from '../core/policy-registry.js';
import { LocalRateLimiter, resolveRateLimit } from '../core/rate-limiter.js';
import { isStaleWorthy, LastGoodCache, resolveLastGood, STALE_HEADER } from '../core/last-good.js';
import { systemRandom } from '../core/random.js';
import { retryAfterMsOf } from '../core/retry-after.js';
import { requireSharedState } from '../core/shared-policy-state.js';
import type { Settle, Work } from '../core/step.js';
import { isUpstreamError, UpstreamError, UpstreamHttpError } from '../core/upstream-http.error.js';
import type { CircuitBreakerSnapshot } from '../core/circuit-breaker.policy.js';
import { REQUEST_ID_HEADER, REQUEST_TIMEOUT_HEADER } from '../fetch/with-deadline.js';
import { errorTypeLabel, gateRefusalError, toUpstreamError } from './call-errors.js';
import { ClientCall, type CallState, type RawAnswer } from './call-state.js';
import type { GateRefusal } from './origin-gate.js';
import {
  parseBaseUrl,
  resolveClientSpec,
  validateClientOptions,
  withoutSharedState,
  type HttpClientDependencies,
} from './client-spec.js';
import { dispatchRequest, type AnswerReader } from './dispatch-handler.js';
import { hedgedAttempt, type ReserveRequest, type SendRequest } from './hedging.js';
import type {
  DataOf,
  HttpCallOptions,
  HttpClientOptions,
  HttpMethod,
  HttpRequestOptions,
  HttpResponse,
} from './http-client.options.js';
import { HTTP_CLIENT_STATE, type HttpClientOriginState } from './http-client-state.js';
import { httpClientTelemetryOptions, startRequestTelemetry, type HttpClientTelemetryOptions } from './http-client.telemetry.js';
import { OriginGate } from './origin-gate.js';
import { basePrefix, callUrl, joinPath, serializeBody } from './request-parts.js';
import { errorBodyOfAnswer, isThenable, readBody } from './response-body.js';

export type { HttpClientDefaults, HttpClientDependencies } from './client-spec.js';

/** Methods whose repetition has no extra effect (RFC 9110 §9.2.2): retried without a key. */
const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);
/** Methods that may be hedged: reads only. */
const HEDGEABLE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);
const DEFAULT_CONNECTIONS = 64;
/** Origins whose pipelines and gate a client keeps (the registry caps breaker state the same way). */
const MAX_ORIGINS = 1000;

/** The pipelines of one origin: with retries, and without (non-idempotent calls that carry no key). */
interface OriginPipelines {
  readonly key: string;
  readonly retrying: Pipeline;
  readonly single: Pipeline;
  readonly gate: OriginGate;
}

/** The options of a verb helper called without any. */
const NO_CALL_OPTIONS: HttpCallOptions = Object.freeze({});

/** The event sink of a client without one: it wants nothing, so per-attempt events are not even built. */
const NO_EVENTS: ResilienceEventSink = Object.assign(() => undefined, { wants: () => false });

/**
 * A resilient HTTP client for one dependency, on undici (a keep-alive pool per origin). Every call
 * runs through the library's one engine, in the canonical order: bulkhead (concurrency cap, queue
 * bounded by the deadline) → total timeout → retry (network errors, 408, 429, 5xx, attempt
 * timeouts; backoff with jitter, `Retry-After`, the retry budget) → circuit breaker (per client and
 * origin) → attempt timeout (the request is really cancelled) → rate limit and `Retry-After` pause →
 * request (hedged, for idempotent reads, when asked). Every failure is an {@link UpstreamError}.
 *
 * Inside a decorated route or method it follows the current attempt: its signal cancels the call,
 * its deadline bounds it, and the remaining budget, the request id and the trace context are sent
 * along. POST and PATCH calls carry an `Idempotency-Key` that stays the same on every retry
 * (inside an `@Idempotent()` request, derived from the incoming key and scope).
 *
 * Get one with `@InjectHttpClient('name')` after `ResilientHttpModule.register()`, or construct one
 * yourself outside Nest.
 * @example
 * const { data } = await this.model.post('/generate', { topic }, { schema: GenerateAnswer });
 * @publicApi
 */
export class HttpClient {
  /** @internal marks a client for the resilience console (found among the application's providers). */
  readonly [HTTP_CLIENT_STATE] = true as const;
  private readonly options: HttpClientOptions;
  private readonly base: URL;
  private readonly baseOrigin: string;
  /** The base URL without its trailing slashes, for relative paths. */
  private readonly prefix: string;
  /** The client's `headers`, names in lower case (a call's own are laid over a copy). */
  private readonly defaultHeaders: Readonly<Record<string, string>>;
  private readonly env: PolicyEnvironment;
  private readonly registry: PolicyRegistry;
  private readonly spec: Omit<PipelineSpec, 'key'>;
  private readonly origins = new Map<string, OriginPipelines>();
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;
  private readonly telemetry: HttpClientTelemetryOptions;
  private readonly onCall: HttpClientDependencies['onCall'];
  private readonly propagateDeadline: boolean;
  private readonly propagateRequestId: boolean;
  private readonly keyHeader: string;
  private readonly chaos: ChaosControl | undefined;
  private closed = false;
  private readonly lastGood: LastGoodCache | undefined;

  /**
   * @throws ResilienceConfigError when an option can never work, or asks for shared state and the
   * registry has no `sharedState` backend (the message names the fix).
   */
  constructor(
    /** Name of the client (keys its policies, labels its logs and telemetry). */
    readonly name: string,
    options: HttpClientOptions,
    dependencies: HttpClientDependencies = {},
  ) {
    this.options = options;
    this.base = parseBaseUrl(name, options.baseUrl);
    this.baseOrigin = this.base.origin;
    this.prefix = basePrefix(this.base);
    this.defaultHeaders = lowerCased({}, options.headers);
    this.env = dependencies.env ?? standaloneEnvironment();
    this.registry = dependencies.registry ?? new PolicyRegistry(this.env);
    this.spec = resolveClientSpec(name, options, dependencies);
    validateClientOptions(name, options);
    requireSharedState({ ...this.spec, rateLimit: options.rateLimit }, `The HTTP client "${name}"`, this.registry.sharedState);
    // one validation at construction: a bad combination fails at start-up, not on the first call.
    // Its throwaway registry has no backend, so shared state is left out: checked above, and building
    // it would subscribe to the backend for a breaker no call ever uses.
    createPipeline({ key: `http:${name}`, ...withoutSharedState(this.spec) }, this.env, new PolicyRegistry(this.env));
    this.ownsDispatcher = options.dispatcher === undefined;
    this.dispatcher = options.dispatcher ?? new Agent({ connections: options.connections ?? DEFAULT_CONNECTIONS });
    const propagate = options.propagate ?? {};
    this.propagateDeadline = propagate.deadline ?? true;
    this.propagateRequestId = propagate.requestId ?? true;
    this.telemetry = httpClientTelemetryOptions(dependencies.telemetry, propagate.traceContext ?? true);
    this.onCall = dependencies.onCall;
    this.keyHeader = (options.idempotencyKeyHeader ?? 'idempotency-key').toLowerCase();
    this.chaos = dependencies.chaos ?? undefined;
    this.lastGood = options.lastGood === undefined ? undefined : new LastGoodCache(this.env.clock, resolveLastGood(options.lastGood, `The HTTP client "${name}"`));
    if (options.lastGood?.shared === true) {
      // an answer carries headers and a body of any type (a stream, bytes): not a JSON value to share
      throw new ResilienceConfigError(
        `The HTTP client "${name}" sets lastGood.shared: true, which HTTP clients do not support (their answers stay in-process). ` +
          'Remove lastGood.shared, and put @Fallback({ lastGood: { ttl, shared: true } }) on the provider method that calls the client to share its results.',
      );
    }
    // a shared breaker reads the shared state when it is created: created with the client, it knows
    // at start-up whether the dependency's breaker is open elsewhere, instead of after its first call
    if (this.spec.circuitBreaker?.shared === true) this.pipelinesFor(this.baseOrigin);
  }

  /** The client's base URL. */
  get baseUrl(): string {
    return this.base.href;
  }

  /** The health probe of this client (`ping` option), if any. */
  get ping(): HttpClientOptions['ping'] {
    return this.options.ping;
  }

  /**
   * Sends one call. A 2xx answer resolves with its body (`data`, validated by `schema` when given);
   * anything else rejects with an {@link UpstreamError}.
   * @example
   * const { data } = await client.request({ method: 'PUT', path: `/reports/${id}`, body: report });
   */
  request<T = never, O extends HttpRequestOptions = HttpRequestOptions>(options: O): Promise<HttpResponse<[T] extends [never] ? DataOf<O> : T>> {
    return this.call(options.method, options.path, options.body, options) as Promise<HttpResponse<[T] extends [never] ? DataOf<O> : T>>;
  }

  /** `GET path`. @example const { data } = await client.get('/reports', { query: { page: 2 }, schema: ReportPage }); */
  get<T = never, O extends HttpCallOptions = HttpCallOptions>(path: string, options?: O): Promise<HttpResponse<[T] extends [never] ? DataOf<O> : T>> {
    return this.call('GET', path, undefined, options ?? NO_CALL_OPTIONS) as Promise<HttpResponse<[T] extends [never] ? DataOf<O> : T>>;
  }

  /** `POST path` with `body` (JSON unless a string or bytes); carries an `Idempotency-Key`, so it is retried. */
  post<T = never, O extends HttpCallOptions = HttpCallOptions>(path: string, body?: unknown, options?: O): Promise<HttpResponse<[T] extends [never] ? DataOf<O> : T>> {
    return this.call('POST', path, body, options ?? NO_CALL_OPTIONS) as Promise<HttpResponse<[T] extends [never] ? DataOf<O> : T>>;
  }

  /** `PUT path` with `body`. */
  put<T = never, O extends HttpCallOptions = HttpCallOptions>(path: string, body?: unknown, options?: O): Promise<HttpResponse<[T] extends [never] ? DataOf<O> : T>> {
    return this.call('PUT', path, body, options ?? NO_CALL_OPTIONS) as Promise<HttpResponse<[T] extends [never] ? DataOf<O> : T>>;
  }

  /** `PATCH path` with `body`; carries an `Idempotency-Key`, so it is retried. */
  patch<T = never, O extends HttpCallOptions = HttpCallOptions>(path: string, body?: unknown, options?: O): Promise<HttpResponse<[T] extends [never] ? DataOf<O> : T>> {
    return this.call('PATCH', path, body, options ?? NO_CALL_OPTIONS) as Promise<HttpResponse<[T] extends [never] ? DataOf<O> : T>>;
  }

  /** `DELETE path`. */
  delete<T = never, O extends HttpCallOptions = HttpCallOptions>(path: string, options?: O): Promise<HttpResponse<[T] extends [never] ? DataOf<O> : T>> {
    return this.call('DELETE', path, undefined, options ?? NO_CALL_OPTIONS) as Promise<HttpResponse<[T] extends [never] ? DataOf<O> : T>>;
  }

  /**
   * The circuit breakers of this client, one per origin it called (and its base URL's origin once
   * called, or from the start with `circuitBreaker.shared`), for health checks.
   */
  circuitBreakers(): Array<{
    /** The origin the breaker guards. */
    readonly origin: string;
    /** Its state now. */
    readonly snapshot: CircuitBreakerSnapshot;
  }> {
    const result: Array<{ origin: string; snapshot: CircuitBreakerSnapshot }> = [];
    for (const [origin, pipelines] of this.origins) {
      const breaker = this.registry.findCircuitBreaker(pipelines.key);
      if (breaker) result.push({ origin, snapshot: breaker.snapshot() });
    }
    return result;
  }

  /**
   * Each origin the client called (and its base URL's from the start with `circuitBreaker.shared`):
   * its breaker, the pause a `Retry-After` set, and the rate limit's tokens, now.
   */
  originStates(): HttpClientOriginState[] {
    const states: HttpClientOriginState[] = [];
    for (const [origin, pipelines] of this.origins) {
      const breaker = this.registry.findCircuitBreaker(pipelines.key)?.snapshot();
      states.push({ origin, policy: pipelines.key, ...(breaker === undefined ? {} : { breaker }), ...pipelines.gate.snapshot() });
    }
    return states;
  }

  /** Until when (clock ms) calls to `origin` (default: the base URL's) are paused by a `Retry-After`, if they are. */
  pausedUntil(origin: string = this.base.origin): number | undefined {
    return this.origins.get(origin)?.gate.pausedUntil;
  }

  /**
   * Sends the client's `ping` request once, outside every policy (no retry, breaker, rate limit or
   * log event), through the client's connection pool: for health checks. Resolves with the status
   * (any status: the caller judges it) and the latency on the clock.
   * @throws ResilienceConfigError when the client has no `ping` option.
   * @throws the network error, or a `TimeoutError` when no answer came within `ping.timeout`.
   */
  async probe(): Promise<{
    /** The answer's status code. */
    readonly status: number;
    /** Round trip, ms. */
    readonly latencyMs: number;
  }> {
    const ping = this.options.ping;
    if (ping === undefined) {
      throw new ResilienceConfigError(`The HTTP client "${this.name}" has no ping option to probe. Give it { ping: { path: '/health' } }.`);
    }
    const started = this.env.clock.now();
    const response = await undiciRequest(new URL(joinPath(this.prefix, ping.path)), {
      method: 'GET',
      headers: this.options.headers,
      signal: AbortSignal.timeout(ping.timeout ?? 1_000),
      dispatcher: this.dispatcher,
    });
    await response.body.dump();
    return { status: response.statusCode, latencyMs: this.env.clock.now() - started };
  }

  /** Closes the client's connection pool (not a dispatcher you passed in). Safe to call more than once. */
  async close(): Promise<void> {
    if (!this.ownsDispatcher || this.closed) return;
    this.closed = true;
    await this.dispatcher.close();
  }

  /** One call: `method` (default GET) of `path`, with `body` and the call's other options (the verb helpers pass them apart: no options object is copied per call). */
  private call(requestedMethod: HttpMethod | undefined, path: string, body: unknown, options: HttpCallOptions): Promise<HttpResponse<unknown>> {
    const { clock } = this.env;
    const started = clock.now();
    const method = (requestedMethod ?? 'GET').toUpperCase() as HttpMethod;
    const { href, target } = callUrl(this.base, this.prefix, path, options.query);
    const queryAt = path.indexOf('?');
    const route = options.route ?? (queryAt === -1 ? path : path.slice(0, queryAt));
    const originName = target === this.base ? this.baseOrigin : target.origin;
    const origin = this.pipelinesFor(originName);
    const headers = this.headersOf(options, method, route);
    const retryAllowed = IDEMPOTENT_METHODS.has(method) || headers[this.keyHeader] !== undefined;
    const pipeline = retryAllowed ? origin.retrying : origin.single;

    const ambient = currentInFrame('resilience');
    const ambientToken = ambient === undefined ? undefined : (ambient.cancellation ?? Cancellation.from(ambient.signal));
    const root = Cancellation.from(options.signal);
    const stopFollowing = ambientToken === undefined ? noop : followToken(ambientToken, root);
    const total = this.spec.timeout?.total;
    const deadline = Math.min(ambient?.deadline ?? Infinity, total === undefined ? Infinity : started + total);

    const hedging = this.options.hedging && options.hedge !== false && HEDGEABLE_METHODS.has(method) ? this.options.hedging : undefined;
    const call = new ClientCall(
      method,
      href,
      originName,
      target,
      route,
      headers,
      serializeBody(body, headers),
      options.responseType ?? (options.schema ? 'json' : 'auto'),
      options.schema,
      hedging,
      origin.gate,
      deadline,
      started,
      root,
      stopFollowing,
      // a token made here for the ambient signal is this call's to dispose
      ambient !== undefined && ambient.cancellation === undefined ? ambientToken : undefined,
    );
    return new Promise<HttpResponse<unknown>>((resolve, reject) => {
      call.resolve = resolve;
      call.reject = reject;
      this.start(call, pipeline);
    });
  }

  /** Runs the call: the first request waits for the origin's gate, then the pipeline runs. */
  private start(call: ClientCall, pipeline: Pipeline): void {
    const finish: Settle = (failed, outcome) => this.finish(call, failed, outcome);
    // the rate limit or a Retry-After pause is waited for before the pipeline's clocks start,
    // within the call's deadline; a wait past it fails at once
    if (call.gate.opensNow()) this.runPipeline(call, pipeline, finish, undefined);
    else this.reserve(call, call.root, (refusal) => this.runPipeline(call, pipeline, finish, refusal));
  }

  /** Runs the pipeline once the gate let the first request go (or fails the call with the gate's refusal). */
  private runPipeline(call: ClientCall, pipeline: Pipeline, finish: Settle, refusal: UpstreamError | undefined): void {
    if (refusal !== undefined) {
      finish(true, refusal);
      return;
    }
    const { root } = call;
    if (root.aborted) {
      finish(true, abortErrorOf(root));
      return;
    }
    call.firstReserved = true;
    // The caller's deadline is not handed to the pipeline: the caller's own timer ends the call
    // through `root`, with the caller's reason (its attempt timeout stays retryable for it). Had
    // the client's timer fired first at the same instant, the caller would see a deadline error
    // of the client's, which it never retries.
    pipeline.run(this.attemptWork(call), { cancellation: root }, finish);
  }

  /** Ends the call: its outcome reported, a GET's answer kept (or a kept one served on failure), the promise settled. */
  private finish(call: ClientCall, failed: boolean, outcome: unknown): void {
    call.release();
    const error = failed ? toUpstreamError(outcome, call, this.name) : undefined;
    this.report(call, call.started, error);
    if (this.lastGood !== undefined && call.method === 'GET') {
      if (error === undefined) this.lastGood.set(call.href, outcome);
      else if (isStaleWorthy(error)) {
        const stale = this.lastGood.get(call.href);
        if (stale !== undefined) {
          this.env.events({ event: 'fallback_used', policy: `http:${this.name}@${call.origin}`, outcome: 'last_good', detail: `age ${stale.ageMs} ms`, errorType: error.name, error });
          const answer = stale.value as HttpResponse<unknown>;
          call.resolve({ ...answer, headers: { ...answer.headers, [STALE_HEADER]: String(Math.floor(stale.ageMs / 1000)) }, stale: { ageMs: stale.ageMs } });
          return;
        }
      }
    }
    if (error !== undefined) call.reject(error);
    else call.resolve(outcome as HttpResponse<unknown>);
  }

  /**
   * One attempt: the request, hedged when the call asks for it. With chaos enabled, an HTTP answer a
   * rule injected into the attempt stands in for the request.
   */
  private attemptWork(state: CallState): Work {
    const attempt = hedgedAttempt(state, this.env.clock, this.reserve, this.send);
    if (this.chaos === undefined) return attempt;
    return (context, settle) => {
      const injected = chaosAnswerOf(context);
      if (injected === undefined) attempt(context, settle);
      else this.answerInjected(state, injected, settle);
    };
  }

  /**
   * An HTTP answer a chaos rule injected in place of this attempt's request, handled as the origin's
   * answer would be (a 429/503 `Retry-After` pauses the origin); nothing is sent.
   */
  private answerInjected(state: CallState, fault: ChaosHttpFault, settle: Settle): void {
    // the first request's rate-limit token went to this answer: a retry reserves its own
    state.firstReserved = false;
    state.lastStatus = fault.status;
    const json = fault.body !== undefined && typeof fault.body !== 'string';
    const body = fault.body === undefined ? Buffer.alloc(0) : Buffer.from(json ? JSON.stringify(fault.body) : String(fault.body));
    const headers: IncomingHttpHeaders = { ...(json ? { 'content-type': 'application/json' } : {}), ...fault.headers };
    this.settleAnswer(state, { status: fault.status, headers, body }, undefined, settle);
  }

  /** Waits for the origin's gate (rate limit, `Retry-After` pause) within the call's deadline. */
  private readonly reserve: ReserveRequest = (state, token, go) =>
    state.gate.wait(state.deadline, token, (refusal?: GateRefusal) => go(refusal && gateRefusalError(refusal, state, this.name)));

  /** Sends one request with `token`'s signal and settles with the parsed answer or the failure. */
  private readonly send: SendRequest = (state, token, attemptDeadline, settle) => {
    const { clock } = this.env;
    const resendCount = state.sent;
    state.sent++;
    const headers = { ...state.headers };
    // the budget left: this attempt's, or the caller's when that ends sooner
    const budgetEnd = Math.min(attemptDeadline, state.deadline);
    if (this.propagateDeadline && Number.isFinite(budgetEnd)) {
      headers[REQUEST_TIMEOUT_HEADER] = String(Math.max(0, Math.floor(budgetEnd - clock.now())));
    }
    const endTelemetry = startRequestTelemetry(state, resendCount, this.name, headers, this.telemetry, clock);
    const ended: Settle =
      endTelemetry === undefined
        ? settle
        : (failed, outcome) => {
            endTelemetry(state.lastStatus, failed ? errorTypeLabel(outcome) : undefined);
            settle(failed, outcome);
          };
    dispatchRequest(this.dispatcher, this.name, state, token, headers, this.readAnswerOf, ended);
  };

  /** Settles a request with its whole answer, read. */
  private readonly readAnswerOf: AnswerReader = (state, answer, token, settle) => this.settleAnswer(state, answer, token, settle);

  /**
   * Settles with the answer read ({@link readAnswer}): at once, unless a schema validates
   * asynchronously. A failure to read it while `token` is aborted settles with the abort's reason.
   */
  private settleAnswer(state: CallState, raw: RawAnswer, token: Cancellation | undefined, settle: Settle): void {
    let answer: HttpResponse<unknown> | PromiseLike<HttpResponse<unknown>>;
    try {
      answer = this.readAnswer(state, raw);
    } catch (error) {
      settle(true, abortReasonOr(token, error));
      return;
    }
    if (isThenable(answer)) {
      answer.then(
        (value) => settle(false, value),
        (error: unknown) => settle(true, abortReasonOr(token, error)),
      );
    } else settle(false, answer);
  }

  /**
   * A 2xx answer as an {@link HttpResponse}, read synchronously (a promise of it only when a schema
   * validates asynchronously); anything else thrown as an {@link UpstreamHttpError} (pausing the
   * origin on a 429/503 `Retry-After`).
   */
  private readAnswer(state: CallState, answer: RawAnswer): HttpResponse<unknown> | PromiseLike<HttpResponse<unknown>> {
    const { status, headers } = answer;
    if (status < 200 || status > 299) {
      const body = errorBodyOfAnswer(answer);
      const retryAfterMs = retryAfterMsOf({ headers }, this.env.clock.now());
      if ((status === 429 || status === 503) && retryAfterMs !== undefined && retryAfterMs > 0 && this.options.haltOnRetryAfter !== false) {
        state.gate.halt(this.env.clock.now() + retryAfterMs);
      }
      throw new UpstreamHttpError(status, { body, headers, retryAfterMs, client: this.name, method: state.method, url: state.href });
    }
    const data = readBody(state, answer, this.name);
    if (isThenable(data)) return Promise.resolve(data).then((value) => ({ status, headers, data: value, attempts: state.sent }));
    return { status, headers, data, attempts: state.sent };
  }

  private report(state: CallState, started: number, error: UpstreamError | undefined): void {
    if (!this.onCall) return;
    try {
      this.onCall(
        {
          client: this.name,
          method: state.method,
          route: state.route,
          origin: state.origin,
          ...(state.lastStatus === undefined ? {} : { status: state.lastStatus }),
          attempts: state.sent,
          durationMs: this.env.clock.now() - started,
          outcome: error === undefined ? 'success' : error.code,
          ...requestIdField(),
        },
        error,
      );
    } catch {
      // a log hook must never fail a call
    }
  }

  private pipelinesFor(origin: string): OriginPipelines {
    let pipelines = this.origins.get(origin);
    if (pipelines === undefined) {
      const key = `http:${this.name}@${origin}`;
      const { retry, ...withoutRetry } = this.spec;
      // chaos rules naming this client (and origin) inject into its attempts; an HTTP fault is answered by the client itself
      const chaos: PipelineChaos | undefined = this.chaos && { control: this.chaos, site: { policy: key, httpClient: this.name, origin }, answersInWork: true };
      const spec = chaos === undefined ? this.spec : { ...this.spec, chaos };
      pipelines = {
        key,
        retrying: createPipeline({ key, ...spec }, this.env, this.registry),
        single: retry === undefined ? createPipeline({ key, ...spec }, this.env, this.registry) : createPipeline({ key, ...withoutRetry, ...(chaos === undefined ? {} : { chaos }) }, this.env, this.registry),
        gate: new OriginGate(this.env.clock, this.rateLimiterOf(key), !this.options.rateLimit),
      };
      this.origins.set(origin, pipelines);
      // calls to absolute URLs could name any number of origins: keep the most recent ones
      if (this.origins.size > MAX_ORIGINS) this.origins.delete(this.origins.keys().next().value!);
    }
    return pipelines;
  }

  /**
   * The rate limit and pause of one origin: the registry's shared limiter with `rateLimit.shared`
   * (one per key for every instance), else a bucket of this client's own.
   */
  private rateLimiterOf(key: string) {
    const { rateLimit } = this.options;
    if (rateLimit && rateLimit.shared === true) return this.registry.rateLimiter(key, rateLimit);
    return new LocalRateLimiter(this.env.clock, rateLimit ? resolveRateLimit(rateLimit, `The HTTP client "${this.name}"`).rate : undefined);
  }

  private headersOf(options: HttpCallOptions, method: HttpMethod, route: string): Record<string, string> {
    const headers = lowerCased({ ...this.defaultHeaders }, options.headers);
    if (this.propagateRequestId && headers[REQUEST_ID_HEADER] === undefined) {
      const requestId = getRequestInfo()?.requestId;
      if (requestId !== undefined) headers[REQUEST_ID_HEADER] = requestId;
    }
    if (!IDEMPOTENT_METHODS.has(method) && headers[this.keyHeader] === undefined) {
      const key = this.idempotencyKeyOf(options, method, route);
      if (key !== undefined) headers[this.keyHeader] = key;
    }
    return headers;
  }

  /**
   * The key of a POST/PATCH call: the call's own, else (in `auto` mode) one derived from the
   * incoming `@Idempotent()` request and the call name, else a random one for this call.
   */
  private idempotencyKeyOf(options: HttpCallOptions, method: HttpMethod, route: string): string | undefined {
    if (options.idempotencyKey === false) return undefined;
    if (typeof options.idempotencyKey === 'string') return options.idempotencyKey;
    if (this.options.idempotencyKeys === 'explicit') return undefined;
    const incoming = currentInFrame('idempotency')?.info;
    if (incoming !== undefined) return incoming.downstreamKey(`${this.name}:${options.callName ?? `${method} ${route}`}`);
    return randomUUID();
  }
}

/**
 * The environment of a client made outside Nest without one: the system clock, no events, and the
 * client's timeouts on one (unref'd) timer of its own, as the module's environment has them,
 * instead of a setTimeout and a clearTimeout per timeout per call. One per client: a queue shared by
 * every client would carry a timer armed under one test's fake timers into the next test.
 */
function standaloneEnvironment(): PolicyEnvironment {
  return {
    clock: systemClock,
    random: systemRandom,
    events: NO_EVENTS,
    deadlines: new DeadlineQueue(systemClock, { keepTimerWhenIdle: true, context: frameDeadlineContext }),
  };
}

/** Makes `target` abort when `source` does; returns the function that stops following. */
function followToken(source: Cancellation, target: Cancellation): () => void {
  if (source.aborted) {
    target.abort(source.reason);
    return noop;
  }
  return source.onAbort((reason) => target.abort(reason));
}

function noop(): void {}

/** What a request whose answer could not be read fails with: the abort's reason once `token` aborted (unless the failure is the upstream's own), else `error`. */
function abortReasonOr(token: Cancellation | undefined, error: unknown): unknown {
  return token !== undefined && token.aborted && !isUpstreamError(error) ? token.reason : error;
}

/** `target` with `source`'s headers laid over it, names in lower case. */
function lowerCased(target: Record<string, string>, source: Readonly<Record<string, string>> | undefined): Record<string, string> {
  if (source !== undefined) for (const [name, value] of Object.entries(source)) target[name.toLowerCase()] = value;
  return target;
}

function requestIdField(): { requestId?: string } {
  const requestId = getRequestInfo()?.requestId;
  return requestId === undefined ? {} : { requestId };
}
