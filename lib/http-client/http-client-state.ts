// What an HttpClient shows of itself to the resilience console, without loading undici.
import type { CircuitBreakerSnapshot } from '../core/circuit-breaker.policy.js';

/** Marks an `HttpClient` (found among the application's providers by the console). @internal */
export const HTTP_CLIENT_STATE = Symbol.for('nest-resilience.http-client-state');

/**
 * One origin an `HttpClient` called, as it stands now.
 * @publicApi
 */
export interface HttpClientOriginState {
  /** `http(s)://host:port`. */
  readonly origin: string;
  /** Policy key of its breaker, bulkhead and budget: `http:<client>@<origin>`. */
  readonly policy: string;
  /** Its breaker, when the client has one. */
  readonly breaker?: CircuitBreakerSnapshot;
  /** How long calls stay paused by the origin's `Retry-After` (ms), while they are. */
  readonly pausedForMs?: number;
  /** The client's rate limit for this origin: tokens left now (below 0 while requests wait), burst and rate. */
  readonly rateLimit?: {
    /** Requests that may start now without waiting (below 0 while requests queue for a token). */
    readonly tokens: number;
    /** Most requests that may start at once after a quiet spell (the bucket's size). */
    readonly burst: number;
    /** Sustained rate the bucket refills at. */
    readonly requestsPerSecond: number;
  };
}

/** An `HttpClient` as the console reads it. @internal */
export interface ObservedHttpClient {
  readonly [HTTP_CLIENT_STATE]: true;
  readonly name: string;
  readonly baseUrl: string;
  originStates(): HttpClientOriginState[];
}

/** Whether `value` is an `HttpClient` (also across duplicated module copies). @internal */
export function isObservedHttpClient(value: unknown): value is ObservedHttpClient {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[HTTP_CLIENT_STATE] === true;
}
