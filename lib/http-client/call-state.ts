import type { IncomingHttpHeaders } from 'node:http';
import type { StandardSchemaV1 } from '@standard-schema/spec';
import type { HedgingOptions, HttpCallOptions, HttpMethod } from './http-client.options.js';
import type { OriginGate } from './origin-gate.js';

/**
 * Everything one call of an {@link HttpClient} needs, computed once, and what it learns while it
 * runs (requests sent, the last status). Shared by the client, its hedging, its dispatch handler
 * and its body parsing.
 * @internal
 */
export interface CallState {
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

/**
 * A whole answer, buffered by the dispatch handler (dispatch-handler.ts).
 * @internal
 */
export interface RawAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}
