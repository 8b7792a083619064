import type { StandardSchemaV1 } from '@standard-schema/spec';
import type { Dispatcher } from 'undici';
import type { BulkheadOptions, CircuitBreakerOptions, RetryOptions, TimeoutOptions } from '../core/options.js';
import type { RateLimitOptions } from '../core/rate-limiter.js';
import type { LastGoodOptions } from '../core/last-good.js';

/**
 * HTTP methods an `HttpClient` sends.
 * @publicApi
 */
export type HttpMethod = 'GET' | 'HEAD' | 'OPTIONS' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/**
 * Client-side rate limit per origin: `requestsPerSecond` or `requestsPerMinute`, `burst`, and with
 * `shared: true` one limit for every instance of the application (needs
 * `ResilienceModule.forRoot({ sharedState })`), whose `Retry-After` pause is shared as well.
 * @publicApi
 */
export type { RateLimitOptions } from '../core/rate-limiter.js';

/**
 * Hedging for idempotent reads: when an attempt has not answered after `delay` ms, a second request
 * is sent; the first success wins and the other request is aborted. Only GET, HEAD and OPTIONS
 * calls are hedged.
 * @publicApi
 */
export interface HedgingOptions {
  /** How long the first request may run before the hedge is sent, in ms (> 0). */
  readonly delay: number;
  /** Extra requests per attempt, each `delay` ms after the previous one (1–3). @default 1 */
  readonly maxHedges?: number;
}

/**
 * What the client adds to every request.
 * @publicApi
 */
export interface PropagationOptions {
  /** `x-request-timeout-ms`: the call's remaining budget, so the next service can set its own deadline. @default true */
  readonly deadline?: boolean;
  /** `x-request-id`: the id of the request being served, when known. @default true */
  readonly requestId?: boolean;
  /** W3C `traceparent` / `tracestate` (and any propagator's headers) through `@opentelemetry/api`. @default true */
  readonly traceContext?: boolean;
}

/**
 * An optional liveness probe of the dependency, used by `HttpClientHealthIndicator`.
 * @publicApi
 */
export interface HttpClientPingOptions {
  /** Path (relative to `baseUrl`) answered quickly by a healthy dependency, e.g. `/health`. */
  readonly path: string;
  /** How long the probe may take, in ms. @default 1000 */
  readonly timeout?: number;
}

/**
 * Options of one named client (`ResilientHttpModule.register({ clients: { name: options } })`).
 * Resilience options are those of the decorators; omitted ones come from the named `policy`, then
 * from `ResilienceModule.forRoot()` defaults.
 * @example
 * { baseUrl: 'https://api.partner.example', timeout: { total: 5_000, attempt: 2_000 }, rateLimit: { requestsPerSecond: 50 } }
 * @publicApi
 */
export interface HttpClientOptions {
  /** Absolute base URL; a call's path is resolved against it (`/v1` + `reports` → `/v1/reports`). */
  readonly baseUrl: string;
  /** Headers sent with every request (a call's own headers win). @default {} */
  readonly headers?: Readonly<Record<string, string>>;
  /** Named policy of `ResilienceModule.forRoot({ policies })` to start from; this client's own options win. */
  readonly policy?: string;
  /** Total and per-attempt timeouts, in ms. @default { total: 30_000, attempt: 10_000 } (the module's) */
  readonly timeout?: TimeoutOptions;
  /**
   * Retries of network errors, 408, 429, 5xx and attempt timeouts, or `false`. The retry budget is
   * kept per client and origin; `budget: { shared: true }` bounds the retries of every instance of
   * the application together (needs `ResilienceModule.forRoot({ sharedState })`, else the
   * application refuses to start).
   * @default { maxAttempts: 3 } + the module's retry defaults
   * @example
   * { maxAttempts: 4, budget: { ratio: 0.1, shared: true } }
   */
  readonly retry?: RetryOptions | false;
  /**
   * Circuit breaker per client and origin (key `http:<client>@<origin>`), or `false`. With
   * `shared: true` the outcomes of every instance whose client has this name feed one breaker per
   * origin, which opens everywhere at the threshold; the base URL's origin's breaker reads the shared
   * state when the client is created. Needs `ResilienceModule.forRoot({ sharedState })`, else the
   * application refuses to start.
   * @default the module's breaker defaults
   * @example
   * { strategy: { type: 'consecutive', threshold: 5 }, shared: true }
   */
  readonly circuitBreaker?: CircuitBreakerOptions | false;
  /** Concurrency cap per client and origin with a queue bounded by each call's deadline, or `false`. @default false */
  readonly bulkhead?: BulkheadOptions | false;
  /**
   * Client-side rate limit per origin (retries and hedges included), or `false`. With
   * `shared: true` the limit holds for every instance of the application together: each request
   * takes its turn from Redis (one round trip, bounded by the shared state's `maxWait`; during an
   * outage each instance uses its `fallback` limit), and a `Retry-After` pause reaches every instance.
   * @default false
   * @example
   * { requestsPerMinute: 600, burst: 10, shared: true }
   */
  readonly rateLimit?: RateLimitOptions | false;
  /**
   * Pause every call of this client to an origin that answered 429 or 503 with `Retry-After` until
   * that time; a call whose deadline would pass first fails at once (`rate_limited`). With
   * `rateLimit.shared`, the pause is shared: one instance's 429 pauses the origin for the fleet.
   * @default true
   */
  readonly haltOnRetryAfter?: boolean;
  /**
   * Serve the last good answer of a GET of the same URL while the origin's breaker is open or the
   * call fails transiently (timeout, network error, 408/429/5xx), never older than `ttl`: the answer
   * carries `stale: { ageMs }` and the header `resilience-stale: <age in seconds>`. At most
   * `maxEntries` URLs are kept per client, least recently used dropped first. Other methods never.
   * Kept in-process (`shared` is refused here: share the results of the provider method that calls
   * the client with `@Fallback({ lastGood: { shared: true } })`).
   * @default undefined (off)
   * @example
   * { lastGood: { ttl: 300_000, maxEntries: 500 } }
   */
  readonly lastGood?: LastGoodOptions;
  /** Hedged requests for idempotent reads, or `false`. @default false */
  readonly hedging?: HedgingOptions | false;
  /**
   * `auto`: every POST and PATCH call carries an `Idempotency-Key` (derived from the incoming
   * `@Idempotent()` request when there is one, else random per call) that stays the same on every
   * retry, so those calls are retried. `explicit`: only calls given an `idempotencyKey` carry one;
   * the others are never retried.
   * @default 'auto'
   */
  readonly idempotencyKeys?: 'auto' | 'explicit';
  /** Header the key is sent in. @default 'idempotency-key' */
  readonly idempotencyKeyHeader?: string;
  /** Most open connections per origin (undici keep-alive pool). @default 64 */
  readonly connections?: number;
  /** An undici dispatcher to send through instead of the client's own pool (a `MockAgent` in tests). */
  readonly dispatcher?: Dispatcher;
  /** Headers added to every request. @default { deadline: true, requestId: true, traceContext: true } */
  readonly propagate?: PropagationOptions;
  /** Liveness probe used by the health indicator. @default undefined (breaker state only) */
  readonly ping?: HttpClientPingOptions;
}

/**
 * A query string value: arrays repeat the parameter, `undefined` leaves it out.
 * @publicApi
 */
export type QueryValue = string | number | boolean | undefined | ReadonlyArray<string | number | boolean>;

/**
 * Options of one call.
 * @publicApi
 */
export interface HttpCallOptions<S extends StandardSchemaV1 | undefined = StandardSchemaV1 | undefined> {
  /** Query parameters appended to the URL. */
  readonly query?: Readonly<Record<string, QueryValue>>;
  /** Headers of this call (win over the client's). */
  readonly headers?: Readonly<Record<string, string>>;
  /** The caller's signal: aborting it cancels the call and every retry. The incoming request's signal is followed anyway. */
  readonly signal?: AbortSignal;
  /**
   * A Standard Schema v1 validator (zod 4, valibot, arktype) for the JSON body of a 2xx answer: the
   * result is typed by it, and a mismatch or a non-JSON body raises `UpstreamContractError`.
   */
  readonly schema?: S;
  /** How the body of a 2xx answer is read. `auto`: JSON when its content type says so, else text. @default 'auto' (`json` with a schema) */
  readonly responseType?: 'auto' | 'json' | 'text' | 'bytes' | 'none';
  /**
   * The `Idempotency-Key` of a POST or PATCH call, or `false` to send none (the call is then never
   * retried). Ignored for other methods.
   * @default derived or random per call (client option `idempotencyKeys: 'auto'`)
   */
  readonly idempotencyKey?: string | false;
  /**
   * Name of this downstream call inside an `@Idempotent()` request: the derived key is a hash of the
   * incoming request's scope and key and this name, so name each distinct call of a handler.
   * @default `METHOD path-template`
   */
  readonly callName?: string;
  /** Route template for telemetry and logs (`/reports/{id}`), so URLs with ids do not explode cardinality. @default the path */
  readonly route?: string;
  /** Hedge this call (only idempotent reads are hedged). @default the client's `hedging` */
  readonly hedge?: boolean;
}

/**
 * Options of {@link HttpClient.request}: a call plus its method, path and body.
 * @publicApi
 */
export interface HttpRequestOptions<S extends StandardSchemaV1 | undefined = StandardSchemaV1 | undefined> extends HttpCallOptions<S> {
  /** HTTP method. @default 'GET' */
  readonly method?: HttpMethod;
  /** Path resolved against the client's `baseUrl`, or an absolute URL. */
  readonly path: string;
  /** Request body: a string or bytes as is, anything else as JSON. */
  readonly body?: unknown;
}

/**
 * A 2xx answer.
 * @publicApi
 */
export interface HttpResponse<T> {
  /** HTTP status (2xx). */
  readonly status: number;
  /** Response headers, names in lower case. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The body: validated by the schema, parsed JSON, text or bytes (`responseType`). */
  readonly data: T;
  /** Requests sent for the call, retries and hedges included. */
  readonly attempts: number;
  /** Set when the answer is the last good one of this URL (`lastGood`), served because the call failed. */
  readonly stale?: {
    /** How old the answer is, in ms on the client's clock. */
    readonly ageMs: number;
  };
}

/** The type a call's options make `data`: the schema's output when there is one. @publicApi */
export type DataOf<O> = O extends {
  /** The call's schema. */
  readonly schema: infer S;
}
  ? S extends StandardSchemaV1
    ? StandardSchemaV1.InferOutput<S>
    : unknown
  : unknown;

/**
 * One structured record per call, for logs (`HttpClient` context) and your own hooks.
 * @publicApi
 */
export interface HttpCallRecord {
  /** Name of the client. */
  readonly client: string;
  /** HTTP method of the call. */
  readonly method: HttpMethod;
  /** Route template (`route` option) or the path. */
  readonly route: string;
  /** Origin called (`https://api.example`). */
  readonly origin: string;
  /** Status of the last answer, when there was one. */
  readonly status?: number;
  /** Requests sent, retries and hedges included. */
  readonly attempts: number;
  /** Duration of the whole call on the module clock, in ms. */
  readonly durationMs: number;
  /** `success`, or the `UpstreamError` code of the failure. */
  readonly outcome: 'success' | string;
  /** Request id of the request being served, when known. */
  readonly requestId?: string;
}
