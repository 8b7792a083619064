import type { RequestInfoSource } from '../context/context-frame.js';
import { ResilienceConfigError } from '../core/errors.js';
import type { IdempotentRequest } from '../core/idempotency/idempotency-core.interface.js';
import type { StoredResponse } from '../core/idempotency/idempotency-store.interface.js';
import type { IdempotentCall } from './context-adapter.js';
import { NO_RESPONSE, replayStoredValue } from './value-replay.js';

/**
 * What an adapter renders errors with, exported by an optional peer (`@nestjs/microservices`'s
 * `RpcException`, `graphql`'s `GraphQLError`, …): loaded once at start-up from the application's
 * own copy, so its filters' `instanceof` checks see the real class.
 * @internal
 */
export class PeerExport<T> {
  private value: T | undefined;

  /** `notPrepared`: the start-up fix to name when a handler runs before the module loaded it. */
  constructor(
    private readonly load: () => Promise<T>,
    private readonly notPrepared: string,
  ) {}

  async prepare(): Promise<void> {
    this.value ??= await this.load();
  }

  /** Whether the peer was loaded (the application has handlers of this context). */
  get prepared(): boolean {
    return this.value !== undefined;
  }

  /** @throws ResilienceConfigError when the adapter was not prepared. */
  get(): T {
    if (this.value === undefined) throw new ResilienceConfigError(this.notPrepared);
    return this.value;
  }
}

/**
 * One call of an `@Idempotent()` handler whose caller gets a value, not an HTTP response (a
 * message, a gateway message, a job, a provider method): nothing to write response headers to,
 * and a duplicate that finds its key in flight waits for the first (its caller cannot be told to
 * come back later). A stored outcome is answered with {@link replayStoredValue}.
 * @internal
 */
export abstract class ValueIdempotentCall implements IdempotentCall {
  readonly response = NO_RESPONSE;
  readonly waitsForInFlight = true;

  constructor(
    readonly request: IdempotentRequest,
    readonly source: RequestInfoSource,
  ) {}

  abstract renderError(error: unknown): unknown;

  /** What the caller gets for the handler's own stored error (its stored body and status). */
  protected abstract storedError(body: unknown, status: number): unknown;

  /** What the caller gets for a stored problem (the same as for the first call's, unless overridden). */
  protected renderReplayed(error: unknown): unknown {
    return this.renderError(error);
  }

  replay(stored: StoredResponse, notKept?: unknown): unknown {
    return replayStoredValue(
      stored,
      notKept,
      (error) => this.renderReplayed(error),
      (body, status) => this.storedError(body, status),
    );
  }
}

/**
 * The caller-facing hooks of a context whose caller holds no connection the handler could watch,
 * sends no deadline and receives nothing before the handler returns (a BullMQ job, a provider
 * method called in process); `@Idempotent()` applies to every call.
 * @internal
 */
export abstract class DetachedCallerHooks {
  watchCaller(): () => void {
    return noop;
  }

  deadlineOf(): undefined {
    return undefined;
  }

  commitCheck(): undefined {
    return undefined;
  }

  idempotencyApplies(): boolean {
    return true;
  }
}

function noop(): void {}
