import type { IncomingHttpHeaders } from 'node:http';
import type { StandardSchemaV1 } from '@standard-schema/spec';
import type { Cancellation } from '../core/cancellation.js';
import type { HedgingOptions, HttpCallOptions, HttpMethod, HttpResponse } from './http-client.options.js';
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

/**
 * One call of a client: the {@link CallState} its stages share, and how it ends (its promise's
 * functions, what it follows until then). A class, not a literal, so V8 never moves every call
 * (and what it holds) to old space after seeing some outlive a scavenge.
 * @internal
 */
export class ClientCall implements CallState {
  sent = 0;
  lastStatus: number | undefined = undefined;
  firstReserved = false;
  /** Settle the call's promise (set when the promise is made). */
  resolve: (answer: HttpResponse<unknown>) => void = ignore;
  reject: (error: unknown) => void = ignore;

  constructor(
    readonly method: HttpMethod,
    readonly href: string,
    readonly origin: string,
    readonly target: URL,
    readonly route: string,
    readonly headers: Record<string, string>,
    readonly body: string | Uint8Array | undefined,
    readonly responseType: CallState['responseType'],
    readonly schema: CallState['schema'],
    readonly hedging: CallState['hedging'],
    readonly gate: OriginGate,
    readonly deadline: number,
    /** When the call started (clock ms). */
    readonly started: number,
    /** The call's token: the caller's signal and the ambient attempt abort it. */
    readonly root: Cancellation,
    private readonly stopFollowing: () => void,
    /** A token made for the ambient attempt's signal, disposed with the call. */
    private readonly ambientToken: Cancellation | undefined,
  ) {}

  /** Stops following the caller's signal and the ambient attempt once the call settled. */
  release(): void {
    this.stopFollowing();
    this.root.dispose();
    this.ambientToken?.dispose();
  }
}

function ignore(): void {}
