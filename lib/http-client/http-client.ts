import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { StandardSchemaV1 } from '@standard-schema/spec';
import { Agent, request as undiciRequest, type Dispatcher } from 'undici';
import { currentInFrame } from '../context/context-frame.js';
import { getRequestInfo } from '../context/resilience-context.js';
import { Cancellation, cancellationOf } from '../core/cancellation.js';
import { abortErrorOf, isTransientError, retryAfterMsOf } from '../core/classify.js';
import { systemClock } from '../core/clock.js';
import { isResilienceError, ResilienceConfigError } from '../core/errors.js';
import { errorTypeOf, type ResilienceEventSink } from '../core/events.js';
import type { BulkheadOptions, CircuitBreakerOptions, RetryOptions, TimeoutOptions } from '../core/options.js';
import { createPipeline, type Pipeline, type PipelineSpec } from '../core/pipeline.js';
import type { PolicyEnvironment } from '../core/policy.js';
import { PolicyRegistry } from '../core/policy-registry.js';
import { systemRandom } from '../core/random.js';
import { requireSharedState } from '../core/shared-policy-state.js';
import { once, promiseOf, type Settle, type Work } from '../core/step.js';
import { errorBodyOf } from '../core/error-body.js';
import { isUpstreamError, UpstreamContractError, UpstreamError, UpstreamHttpError, type UpstreamContractIssue } from '../core/upstream-http.error.js';
import type { CircuitBreakerSnapshot } from '../core/circuit-breaker.policy.js';
import { REQUEST_ID_HEADER, REQUEST_TIMEOUT_HEADER } from '../fetch/with-deadline.js';
import type { NamedPolicyOptions } from '../interfaces/resilience-module-options.interface.js';
import type {
  DataOf,
  HedgingOptions,
  HttpCallOptions,
  HttpCallRecord,
  HttpClientOptions,
  HttpMethod,
  HttpRequestOptions,
  HttpResponse,
  QueryValue,
} from './http-client.options.js';
import { httpClientTelemetryOptions, startRequestTelemetry, type HttpClientTelemetryOptions } from './http-client.telemetry.js';
import { OriginGate } from './origin-gate.js';

/** Methods whose repetition has no extra effect (RFC 9110 §9.2.2): retried without a key. */
const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);
/** Methods that may be hedged: reads only. */
const HEDGEABLE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);
const MAX_CONTRACT_ISSUES = 20;
const DEFAULT_CONNECTIONS = 64;
/** Origins whose pipelines and gate a client keeps (the registry caps breaker state the same way). */
const MAX_ORIGINS = 1000;
const DEFAULT_TOTAL_TIMEOUT_MS = 30_000;
const DEFAULT_ATTEMPT_TIMEOUT_MS = 10_000;

/**
 * The module-wide settings a client starts from (what `ResilienceModule.forRoot()` resolved).
 * @publicApi
 */
export interface HttpClientDefaults {
  /** Module retry defaults (`forRoot({ retry })`); a client adds `maxAttempts: 3` under them. @default {} */
  readonly retry?: RetryOptions;
  /** Module timeouts (`forRoot({ timeout })`). @default { total: 30_000, attempt: 10_000 } */
  readonly timeout?: TimeoutOptions;
  /** Module breaker defaults (`forRoot({ circuitBreaker })`). @default {} (the breaker's own defaults) */
  readonly circuitBreaker?: CircuitBreakerOptions;
}

/**
 * What a client shares with the rest of the application. `ResilientHttpModule` passes the
 * `ResilienceModule`'s; standalone clients get their own.
 * @publicApi
 */
export interface HttpClientDependencies {
  /** Clock, randomness and event sink of the policies. @default systemClock, systemRandom, no events */
  readonly env?: PolicyEnvironment;
  /**
   * Where breaker, bulkhead and retry budget state lives (keyed `http:<client>@<origin>`); its
   * `sharedState` backend serves the client's `circuitBreaker.shared` and `retry.budget.shared`.
   * @default a registry of its own (no shared state)
   * @example
   * new PolicyRegistry(env, { sharedState: new RedisPolicyState({ client }) })
   */
  readonly registry?: PolicyRegistry;
  /** Named policies a client may refer to with its `policy` option. @default {} */
  readonly policies?: Readonly<Record<string, NamedPolicyOptions>>;
  /** Module defaults. @default retry maxAttempts 3, timeout 30 s total / 10 s attempt, breaker defaults */
  readonly defaults?: HttpClientDefaults;
  /** Telemetry settings (`ResilienceModule.forRoot({ telemetry })`). @default enabled, tracer and meter `nest-resilience` */
  readonly telemetry?: {
    /** Record spans and metrics. */
    readonly enabled?: boolean;
    /** Instrumentation scope of the spans. */
    readonly tracerName?: string;
    /** Instrumentation scope of the metrics. */
    readonly meterName?: string;
  };
  /** Called once per call, when it ends (the structured log event). */
  readonly onCall?: (record: HttpCallRecord, error: UpstreamError | undefined) => void;
}

/** The pipelines of one origin: with retries, and without (non-idempotent calls that carry no key). */
interface OriginPipelines {
  readonly key: string;
  readonly retrying: Pipeline;
  readonly single: Pipeline;
  readonly gate: OriginGate;
}

/** Everything one call needs, computed once. */
/** A whole answer, buffered by {@link HttpClient}'s dispatch handler. */
interface RawAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

/** Bytes of an error answer decoded for {@link UpstreamHttpError.body} (which keeps 4096 characters). */
const MAX_ERROR_BODY_BYTES = 16_384;

interface CallState {
  readonly method: HttpMethod;
  /** The full URL called. */
  readonly href: string;
  /** Its origin (`http://host:port`): keys the pipelines and the gate. */
  readonly origin: string;
  /** A parsed URL of the origin (the base URL's, for relative paths): host and port for telemetry. */
  readonly target: URL;
  readonly route: string;
  readonly headers: Record<string, string>;
  readonly body: string | Uint8Array | undefined;
  readonly responseType: NonNullable<HttpCallOptions['responseType']>;
  readonly schema: StandardSchemaV1 | undefined;
  readonly hedging: HedgingOptions | undefined;
  readonly gate: OriginGate;
  /** The call's deadline: the caller's or the client's total timeout, whichever ends sooner (for the gate and the budget header). */
  readonly deadline: number;
  /** Requests sent so far (retries and hedges included). */
  sent: number;
  /** Status of the last answer. */
  lastStatus: number | undefined;
  /** Whether the first request already holds a rate-limit token (taken before the pipeline started). */
  firstReserved: boolean;
}

/** The event sink of a client without one: it wants nothing, so per-attempt events are not even built. */
const NO_EVENTS: ResilienceEventSink = Object.assign(() => undefined, { wants: () => false });

/** Abort reason of a hedged request that lost the race. */
class HedgeLostError extends Error {
  constructor() {
    super('Another request of the same hedged attempt answered first; this one was cancelled.');
    this.name = 'HedgeLostError';
  }
}
const HEDGE_LOST = new HedgeLostError();

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
  private readonly options: HttpClientOptions;
  private readonly base: URL;
  private readonly baseOrigin: string;
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
  private closed = false;

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
    this.env = dependencies.env ?? { clock: systemClock, random: systemRandom, events: NO_EVENTS };
    this.registry = dependencies.registry ?? new PolicyRegistry(this.env);
    this.spec = resolveClientSpec(name, options, dependencies);
    validateClientOptions(name, options);
    requireSharedState(this.spec, `The HTTP client "${name}"`, this.registry.sharedState);
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
    return this.call(options) as Promise<HttpResponse<[T] extends [never] ? DataOf<O> : T>>;
  }

  /** `GET path`. @example const { data } = await client.get('/reports', { query: { page: 2 }, schema: ReportPage }); */
  get<T = never, O extends HttpCallOptions = HttpCallOptions>(path: string, options?: O): Promise<HttpResponse<[T] extends [never] ? DataOf<O> : T>> {
    return this.request<T, O & HttpRequestOptions>({ ...options, method: 'GET', path } as O & HttpRequestOptions);
  }

  /** `POST path` with `body` (JSON unless a string or bytes); carries an `Idempotency-Key`, so it is retried. */
  post<T = never, O extends HttpCallOptions = HttpCallOptions>(path: string, body?: unknown, options?: O): Promise<HttpResponse<[T] extends [never] ? DataOf<O> : T>> {
    return this.request<T, O & HttpRequestOptions>({ ...options, method: 'POST', path, body } as O & HttpRequestOptions);
  }

  /** `PUT path` with `body`. */
  put<T = never, O extends HttpCallOptions = HttpCallOptions>(path: string, body?: unknown, options?: O): Promise<HttpResponse<[T] extends [never] ? DataOf<O> : T>> {
    return this.request<T, O & HttpRequestOptions>({ ...options, method: 'PUT', path, body } as O & HttpRequestOptions);
  }

  /** `PATCH path` with `body`; carries an `Idempotency-Key`, so it is retried. */
  patch<T = never, O extends HttpCallOptions = HttpCallOptions>(path: string, body?: unknown, options?: O): Promise<HttpResponse<[T] extends [never] ? DataOf<O> : T>> {
    return this.request<T, O & HttpRequestOptions>({ ...options, method: 'PATCH', path, body } as O & HttpRequestOptions);
  }

  /** `DELETE path`. */
  delete<T = never, O extends HttpCallOptions = HttpCallOptions>(path: string, options?: O): Promise<HttpResponse<[T] extends [never] ? DataOf<O> : T>> {
    return this.request<T, O & HttpRequestOptions>({ ...options, method: 'DELETE', path } as O & HttpRequestOptions);
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
    const response = await undiciRequest(new URL(joinPath(this.base, ping.path)), {
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

  private call(options: HttpRequestOptions): Promise<HttpResponse<unknown>> {
    const { clock } = this.env;
    const started = clock.now();
    const method = (options.method ?? 'GET').toUpperCase() as HttpMethod;
    const { href, target } = this.urlOf(options.path, options.query);
    const route = options.route ?? options.path.split('?')[0]!;
    const origin = this.pipelinesFor(target === this.base ? this.baseOrigin : target.origin);
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
    const state: CallState = {
      method,
      href,
      origin: target === this.base ? this.baseOrigin : target.origin,
      target,
      route,
      headers,
      body: serializeBody(options.body, headers),
      responseType: options.responseType ?? (options.schema ? 'json' : 'auto'),
      schema: options.schema,
      hedging,
      gate: origin.gate,
      deadline,
      sent: 0,
      lastStatus: undefined,
      firstReserved: false,
    };

    // stops following the caller's signal and the ambient attempt once the call settled
    const release = () => {
      stopFollowing();
      root.dispose();
      if (ambient !== undefined && ambient.cancellation === undefined) ambientToken?.dispose();
    };
    return promiseOf<HttpResponse<unknown>>((settle) => this.start(state, pipeline, root, started, release, settle));
  }

  /** Runs the call: the first request waits for the origin's gate, then the pipeline runs. */
  private start(state: CallState, pipeline: Pipeline, root: Cancellation, started: number, release: () => void, settle: Settle): void {
    const finish: Settle = (failed, outcome) => {
      release();
      const error = failed ? this.toUpstreamError(outcome, state) : undefined;
      this.report(state, started, error);
      settle(failed, error ?? outcome);
    };
    // the rate limit or a Retry-After pause is waited for before the pipeline's clocks start,
    // within the call's deadline; a wait past it fails at once
    this.reserve(state, root, (refusal) => {
      if (refusal !== undefined) {
        finish(true, refusal);
        return;
      }
      if (root.aborted) {
        finish(true, abortErrorOf(root));
        return;
      }
      state.firstReserved = true;
      // The caller's deadline is not handed to the pipeline: the caller's own timer ends the call
      // through `root`, with the caller's reason (its attempt timeout stays retryable for it). Had
      // the client's timer fired first at the same instant, the caller would see a deadline error
      // of the client's, which it never retries.
      pipeline.run(this.attemptWork(state), { cancellation: root }, finish);
    });
  }

  /** One attempt: the request, hedged when the call asks for it; the first success wins. */
  private attemptWork(state: CallState): Work {
    return (context, settle) => {
      const parent = cancellationOf(context) ?? Cancellation.from(context.signal);
      const hedges = state.hedging ? Math.min(3, Math.max(1, state.hedging.maxHedges ?? 1)) : 0;
      const children: Cancellation[] = [];
      /** Children whose request has not ended: only they are aborted when the attempt ends. */
      const pending = new Set<Cancellation>();
      let running = 0;
      let launched = 0;
      let timer: unknown;
      let open = true;
      const finish = (failed: boolean, outcome: unknown) => {
        if (!open) return;
        open = false;
        if (timer !== undefined) this.env.clock.clearTimeout(timer);
        for (const child of children) {
          // a request that already ended is only unlinked: aborting it would make undici tear
          // down a response stream it has finished with
          if (pending.has(child) && !child.aborted) child.abort(HEDGE_LOST);
          child.dispose();
        }
        settle(failed, outcome);
      };
      const launch = (reserved: boolean) => {
        timer = undefined;
        const child = parent.child();
        children.push(child);
        pending.add(child);
        launched++;
        running++;
        const ended: Settle = (failed, outcome) => {
          pending.delete(child);
          running--;
          if (!failed) finish(false, outcome);
          // the last request running failed: the attempt failed (a pending hedge is not sent)
          else if (running === 0) finish(true, outcome);
        };
        const sendNow = () => {
          if (child.aborted) ended(true, abortErrorOf(child));
          else this.send(state, child, context.deadline, ended);
        };
        if (reserved) sendNow();
        else
          this.reserve(state, child, (refusal) => {
            if (refusal !== undefined) ended(true, refusal);
            else sendNow();
          });
        if (launched <= hedges) {
          timer = this.env.clock.setTimeout(() => {
            // a hedge is only worth it when it can go now: it never waits for the rate limit
            if (open && state.gate.pausedUntil === undefined) launch(false);
          }, state.hedging!.delay);
        }
      };
      const reserved = state.firstReserved;
      state.firstReserved = false;
      launch(reserved);
    };
  }

  /**
   * Waits for the origin's gate (rate limit, `Retry-After` pause) on the clock, then calls `go()`;
   * calls `go(error)` at once when the wait would pass the call's deadline. A `token` aborted while
   * waiting hands the reservation back and ends the wait (the caller sees the abort).
   */
  private reserve(state: CallState, token: Cancellation, go: (refusal?: UpstreamError) => void): void {
    const reservation = state.gate.reserve(state.deadline);
    if ('refusedForMs' in reservation) {
      const seconds = Math.ceil(reservation.refusedForMs / 1000);
      const why =
        reservation.reason === 'halted'
          ? `${state.origin} asked for a pause (Retry-After) of another ${seconds} s`
          : `the client's rate limit for ${state.origin} would delay it by ${reservation.refusedForMs} ms`;
      go(
        new UpstreamError('rate_limited', `The call of client "${this.name}" was not sent: ${why}, which ends after the call's deadline. Retry later or give the call a longer deadline.`, {
          retryAfterMs: reservation.refusedForMs,
          attempts: 0,
          client: this.name,
          method: state.method,
          url: state.href,
        }),
      );
      return;
    }
    if (reservation.waitMs <= 0) {
      go();
      return;
    }
    const { clock } = this.env;
    const unsubscribe = token.onAbort(() => {
      clock.clearTimeout(timer);
      reservation.release();
      go();
    });
    const timer = clock.setTimeout(() => {
      unsubscribe();
      go();
    }, reservation.waitMs);
  }

  /** Sends one request with `token`'s signal and settles with the parsed answer or the failure. */
  private send(state: CallState, token: Cancellation, attemptDeadline: number, settle: Settle): void {
    const { clock } = this.env;
    const resendCount = state.sent;
    state.sent++;
    const headers = { ...state.headers };
    // the budget left: this attempt's, or the caller's when that ends sooner
    const budgetEnd = Math.min(attemptDeadline, state.deadline);
    if (this.propagateDeadline && Number.isFinite(budgetEnd)) {
      headers[REQUEST_TIMEOUT_HEADER] = String(Math.max(0, Math.floor(budgetEnd - clock.now())));
    }
    const endTelemetry = startRequestTelemetry(
      { method: state.method, href: state.href, target: state.target, route: state.route, resendCount, client: this.name },
      headers,
      this.telemetry,
      clock,
    );
    const done = once((failed, outcome) => {
      endTelemetry(state.lastStatus, failed ? errorTypeLabel(outcome) : undefined);
      settle(failed, outcome);
    });
    this.exchange(state, token, headers, (failed, outcome) => {
      if (failed) {
        done(true, outcome);
        return;
      }
      this.readAnswer(state, outcome as RawAnswer).then(
        (answer) => done(false, answer),
        (error: unknown) => done(true, token.aborted && !isUpstreamError(error) ? token.reason : error),
      );
    });
  }

  /**
   * One request through `dispatcher.dispatch()` with a handler that buffers the answer: cancelled
   * through the controller undici hands over, so a request costs no `AbortSignal`, no listener on
   * one and no body stream (measured: `undici.request({ signal })` keeps 0.75–0.88 of a plain
   * request, a handler-driven dispatch is faster than either; BENCHMARKS.md). A token aborted
   * before undici starts the request settles the call at once, and the request is aborted as soon
   * as undici starts it.
   */
  private exchange(state: CallState, token: Cancellation, headers: Record<string, string>, settle: Settle): void {
    // a token that is already aborted never calls its listeners: nothing may be sent
    if (token.aborted) {
      settle(true, token.reason);
      return;
    }
    const chunks: Buffer[] = [];
    let controller: Dispatcher.DispatchController | undefined;
    let status = 0;
    let answerHeaders: IncomingHttpHeaders = {};
    let open = true;
    const finish: Settle = (failed, outcome) => {
      if (!open) return;
      open = false;
      unsubscribe();
      settle(failed, outcome);
    };
    const unsubscribe = token.onAbort((reason) => {
      controller?.abort(asError(reason));
      finish(true, reason);
    });
    try {
      this.dispatcher.dispatch(
        { origin: state.origin, path: state.href.slice(state.origin.length) || '/', method: state.method, headers, body: state.body ?? null },
        {
          onRequestStart: (started) => {
            controller = started;
            if (!open && token.aborted) started.abort(asError(token.reason));
          },
          onResponseStart: (_controller, statusCode, responseHeaders) => {
            status = statusCode;
            answerHeaders = responseHeaders;
            state.lastStatus = statusCode;
          },
          onResponseData: (_controller, chunk) => {
            // a 2xx body the caller asked not to read is not kept
            if (state.responseType !== 'none' || status < 200 || status > 299) chunks.push(chunk);
          },
          onResponseEnd: () => finish(false, { status, headers: answerHeaders, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) } satisfies RawAnswer),
          onResponseError: (_controller, error) => finish(true, token.aborted ? token.reason : this.networkError(error, state)),
        },
      );
    } catch (error) {
      finish(true, this.networkError(error, state));
    }
  }

  /** A 2xx answer as an {@link HttpResponse}; anything else as an {@link UpstreamHttpError} (pausing the origin on a 429/503 `Retry-After`). */
  private async readAnswer(state: CallState, answer: RawAnswer): Promise<HttpResponse<unknown>> {
    const { status, headers } = answer;
    if (status < 200 || status > 299) {
      const body = errorBodyOf(answer.body.subarray(0, MAX_ERROR_BODY_BYTES).toString('utf8'), String(headers['content-type'] ?? ''));
      const retryAfterMs = retryAfterMsOf({ headers }, this.env.clock.now());
      if ((status === 429 || status === 503) && retryAfterMs !== undefined && retryAfterMs > 0 && this.options.haltOnRetryAfter !== false) {
        state.gate.halt(this.env.clock.now() + retryAfterMs);
      }
      throw new UpstreamHttpError(status, { body, headers, retryAfterMs, client: this.name, method: state.method, url: state.href });
    }
    const data = await this.readBody(state, answer);
    return { status, headers, data, attempts: state.sent };
  }

  private async readBody(state: CallState, answer: RawAnswer): Promise<unknown> {
    const { body, headers, status } = answer;
    const type = String(headers['content-type'] ?? '');
    switch (state.responseType) {
      case 'none':
        return undefined;
      case 'bytes':
        // a copy: a small buffer may be a slice of Node's shared pool
        return new Uint8Array(body);
      case 'text':
        return body.toString('utf8');
      case 'auto':
        if (!/[/+]json\b/i.test(type)) return body.toString('utf8');
        return parseJson(body.toString('utf8'), status, state, this.name, false);
      case 'json': {
        const value = parseJson(body.toString('utf8'), status, state, this.name, state.schema !== undefined);
        return state.schema ? validate(state.schema, value, status, state, this.name) : value;
      }
    }
  }

  private networkError(error: unknown, state: CallState): unknown {
    if (isResilienceError(error) || isUpstreamError(error)) return error;
    const message = error instanceof Error ? error.message : String(error);
    return new UpstreamError('network', `The call of client "${this.name}" to ${state.origin} failed before an answer arrived: ${message}`, {
      retryable: isTransientError(error),
      cause: error,
      client: this.name,
      method: state.method,
      url: state.href,
    });
  }

  /** Turns whatever ended the call into an {@link UpstreamError} carrying the number of requests sent. */
  private toUpstreamError(error: unknown, state: CallState): UpstreamError {
    let cause = error;
    if (isResilienceError(cause) && cause.code === 'retries_exhausted') cause = cause.cause;
    if (isUpstreamError(cause)) {
      cause.attempts = state.sent;
      return cause;
    }
    const common = { client: this.name, method: state.method, url: state.href, attempts: state.sent, cause };
    const who = `The call of client "${this.name}" to ${state.origin}`;
    if (isResilienceError(cause)) {
      const withHint = cause as { retryAfterMs?: number };
      switch (cause.code) {
        case 'attempt_timeout':
          return new UpstreamError('timeout', `${who} timed out: ${cause.message}`, { ...common, retryable: true });
        case 'timeout':
          return new UpstreamError('timeout', `${who} did not finish within its deadline: ${cause.message}`, common);
        case 'circuit_open':
          return new UpstreamError('circuit_open', `${who} was not sent: ${cause.message}`, { ...common, retryAfterMs: withHint.retryAfterMs });
        case 'bulkhead_rejected':
          return new UpstreamError('bulkhead_rejected', `${who} was not sent: ${cause.message}`, { ...common, retryAfterMs: withHint.retryAfterMs });
        case 'aborted':
          return new UpstreamError('aborted', `${who} was aborted by its caller.`, common);
      }
    }
    return new UpstreamError('network', `${who} failed: ${cause instanceof Error ? cause.message : String(cause)}`, {
      ...common,
      retryable: isTransientError(cause),
    });
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
      pipelines = {
        key,
        retrying: createPipeline({ key, ...this.spec }, this.env, this.registry),
        single: retry === undefined ? createPipeline({ key, ...this.spec }, this.env, this.registry) : createPipeline({ key, ...withoutRetry }, this.env, this.registry),
        gate: new OriginGate(this.env.clock, this.options.rateLimit || undefined),
      };
      this.origins.set(origin, pipelines);
      // calls to absolute URLs could name any number of origins: keep the most recent ones
      if (this.origins.size > MAX_ORIGINS) this.origins.delete(this.origins.keys().next().value!);
    }
    return pipelines;
  }

  /**
   * The URL of a call: a relative path is appended to the base URL as a string (no URL is parsed
   * per call), an absolute URL is parsed; `target` is the parsed origin for pipelines and telemetry.
   */
  private urlOf(path: string, query: HttpCallOptions['query']): { href: string; target: URL } {
    const absolute = /^https?:\/\//i.test(path);
    const target = absolute ? new URL(path) : this.base;
    let href = absolute ? target.href : joinPath(this.base, path);
    if (query) {
      const params = new URLSearchParams();
      for (const [name, value] of Object.entries(query) as Array<[string, QueryValue]>) {
        if (value === undefined) continue;
        if (Array.isArray(value)) for (const item of value) params.append(name, String(item));
        else params.append(name, String(value));
      }
      const search = params.toString();
      if (search !== '') href += `${href.includes('?') ? '&' : '?'}${search}`;
    }
    return { href, target };
  }

  private headersOf(options: HttpRequestOptions, method: HttpMethod, route: string): Record<string, string> {
    const headers: Record<string, string> = {};
    for (const source of [this.options.headers, options.headers]) {
      if (source) for (const [name, value] of Object.entries(source)) headers[name.toLowerCase()] = value;
    }
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
  private idempotencyKeyOf(options: HttpRequestOptions, method: HttpMethod, route: string): string | undefined {
    if (options.idempotencyKey === false) return undefined;
    if (typeof options.idempotencyKey === 'string') return options.idempotencyKey;
    if (this.options.idempotencyKeys === 'explicit') return undefined;
    const incoming = currentInFrame('idempotency')?.info;
    if (incoming !== undefined) return incoming.downstreamKey(`${this.name}:${options.callName ?? `${method} ${route}`}`);
    return randomUUID();
  }
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

function requestIdField(): { requestId?: string } {
  const requestId = getRequestInfo()?.requestId;
  return requestId === undefined ? {} : { requestId };
}

function errorTypeLabel(error: unknown): string {
  if (isUpstreamError(error)) return error.status !== undefined && error.code === 'http_status' ? String(error.status) : error.code;
  return errorTypeOf(error) ?? 'unknown';
}

function joinPath(base: URL, path: string): string {
  const prefix = base.href.replace(/\/+$/, '');
  return path === '' ? prefix : `${prefix}${path.startsWith('/') ? '' : '/'}${path}`;
}

function serializeBody(body: unknown, headers: Record<string, string>): string | Uint8Array | undefined {
  if (body === undefined) return undefined;
  if (typeof body === 'string' || body instanceof Uint8Array) return body;
  headers['content-type'] ??= 'application/json';
  return JSON.stringify(body);
}

/** undici's controller takes an Error as the abort reason. */
function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason));
}

function parseJson(text: string, status: number, state: CallState, client: string, strict: boolean): unknown {
  try {
    return JSON.parse(text);
  } catch {
    if (!strict && text === '') return undefined;
    throw new UpstreamContractError(status, [{ path: '$', message: 'The body is not valid JSON.' }], {
      client,
      method: state.method,
      url: state.href,
    });
  }
}

async function validate(schema: StandardSchemaV1, value: unknown, status: number, state: CallState, client: string): Promise<unknown> {
  const result = await schema['~standard'].validate(value);
  if (result.issues === undefined) return result.value;
  const issues: UpstreamContractIssue[] = result.issues.slice(0, MAX_CONTRACT_ISSUES).map((issue) => ({
    path: formatPath(issue.path),
    message: issue.message,
  }));
  throw new UpstreamContractError(status, issues, { client, method: state.method, url: state.href });
}

/** A Standard Schema issue path as `$.items[0].id`. */
function formatPath(path: StandardSchemaV1.Issue['path']): string {
  let result = '$';
  for (const segment of path ?? []) {
    const key = typeof segment === 'object' && segment !== null ? segment.key : segment;
    if (typeof key === 'number') result += `[${key}]`;
    else if (typeof key === 'string' && /^[A-Za-z_$][\w$]*$/.test(key)) result += `.${key}`;
    else result += `[${JSON.stringify(String(key))}]`;
  }
  return result;
}

function parseBaseUrl(name: string, baseUrl: string): URL {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new ResilienceConfigError(`The HTTP client "${name}" has baseUrl ${JSON.stringify(baseUrl)}, which is not an absolute URL. Give one such as "https://api.example.com/v1".`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ResilienceConfigError(`The HTTP client "${name}" has baseUrl ${JSON.stringify(baseUrl)}. Use an http: or https: URL.`);
  }
  return url;
}

function validateClientOptions(name: string, options: HttpClientOptions): void {
  const where = `The HTTP client "${name}"`;
  const { rateLimit, hedging, connections } = options;
  if (rateLimit) {
    if (!(rateLimit.requestsPerSecond > 0) || !Number.isFinite(rateLimit.requestsPerSecond)) {
      throw new ResilienceConfigError(`${where} has rateLimit.requestsPerSecond ${String(rateLimit.requestsPerSecond)}. Give a number > 0, or rateLimit: false.`);
    }
    if (rateLimit.burst !== undefined && !(Number.isInteger(rateLimit.burst) && rateLimit.burst >= 1)) {
      throw new ResilienceConfigError(`${where} has rateLimit.burst ${String(rateLimit.burst)}. Give a whole number >= 1.`);
    }
  }
  if (hedging) {
    if (!(hedging.delay > 0) || !Number.isFinite(hedging.delay)) {
      throw new ResilienceConfigError(`${where} has hedging.delay ${String(hedging.delay)}. Give a delay in ms > 0, or hedging: false.`);
    }
    if (hedging.maxHedges !== undefined && !(Number.isInteger(hedging.maxHedges) && hedging.maxHedges >= 1 && hedging.maxHedges <= 3)) {
      throw new ResilienceConfigError(`${where} has hedging.maxHedges ${String(hedging.maxHedges)}. Give 1, 2 or 3.`);
    }
  }
  if (connections !== undefined && !(Number.isInteger(connections) && connections >= 1)) {
    throw new ResilienceConfigError(`${where} has connections ${String(connections)}. Give a whole number >= 1.`);
  }
  if (options.idempotencyKeys !== undefined && options.idempotencyKeys !== 'auto' && options.idempotencyKeys !== 'explicit') {
    throw new ResilienceConfigError(`${where} has idempotencyKeys ${JSON.stringify(options.idempotencyKeys)}. Use 'auto' or 'explicit'.`);
  }
}

/** `@Timeout(ms)`'s rule for a named policy's number: an attempt timeout when retries are on. */
function timeoutOf(value: number | TimeoutOptions | undefined, retries: boolean): TimeoutOptions {
  if (value === undefined) return {};
  if (typeof value === 'number') return retries ? { attempt: value } : { total: value };
  return value;
}

/**
 * The pipeline spec of a client: its own options over the named policy over the module defaults.
 * @internal
 */
export function resolveClientSpec(name: string, options: HttpClientOptions, dependencies: HttpClientDependencies): Omit<PipelineSpec, 'key'> {
  const defaults = dependencies.defaults ?? {};
  let named: NamedPolicyOptions = {};
  if (options.policy !== undefined) {
    const found = dependencies.policies?.[options.policy];
    if (found === undefined) {
      const known = Object.keys(dependencies.policies ?? {});
      throw new ResilienceConfigError(
        `The HTTP client "${name}" uses the named policy "${options.policy}", which does not exist. ${known.length === 0 ? 'Add it to ResilienceModule.forRoot({ policies }).' : `Known policies: ${known.map((k) => `"${k}"`).join(', ')}.`}`,
      );
    }
    named = found;
  }
  const retry: RetryOptions | undefined =
    options.retry === false
      ? undefined
      : { maxAttempts: 3, ...defaults.retry, ...withoutNestFields(named.retry), ...options.retry };
  const namedTimeout = timeoutOf(named.timeout, retry !== undefined);
  const total = options.timeout?.total ?? namedTimeout.total ?? defaults.timeout?.total ?? DEFAULT_TOTAL_TIMEOUT_MS;
  const attempt = options.timeout?.attempt ?? namedTimeout.attempt ?? Math.min(defaults.timeout?.attempt ?? DEFAULT_ATTEMPT_TIMEOUT_MS, total);
  const circuitBreaker: CircuitBreakerOptions | undefined =
    options.circuitBreaker === false
      ? undefined
      : { ...defaults.circuitBreaker, ...withoutNestFields(named.circuitBreaker), ...options.circuitBreaker };
  const bulkheadParts = [withoutNestFields(named.bulkhead), options.bulkhead || undefined].filter((part) => part !== undefined);
  const bulkhead: BulkheadOptions | undefined = options.bulkhead === false || bulkheadParts.length === 0 ? undefined : Object.assign({}, ...bulkheadParts);
  return {
    timeout: { total, attempt },
    ...(retry === undefined ? {} : { retry }),
    ...(circuitBreaker === undefined ? {} : { circuitBreaker }),
    ...(bulkhead === undefined ? {} : { bulkhead }),
  };
}

/** `spec` with its breaker and retry budget kept in-process. */
function withoutSharedState(spec: Omit<PipelineSpec, 'key'>): Omit<PipelineSpec, 'key'> {
  const { circuitBreaker, retry } = spec;
  return {
    ...spec,
    ...(circuitBreaker === undefined ? {} : { circuitBreaker: { ...circuitBreaker, shared: false } }),
    ...(retry?.budget ? { retry: { ...retry, budget: { ...retry.budget, shared: false } } } : {}),
  };
}

/** A decorator option object without the fields only the Nest decorators understand. */
function withoutNestFields<T extends object>(value: T | undefined): Omit<T, 'policy' | 'key' | 'rejectStatus' | 'allowNonIdempotentMethod'> | undefined {
  if (value === undefined) return undefined;
  const { policy: _policy, key: _key, rejectStatus: _status, allowNonIdempotentMethod: _allow, ...rest } = value as Record<string, unknown>;
  return rest as Omit<T, 'policy' | 'key' | 'rejectStatus' | 'allowNonIdempotentMethod'>;
}
