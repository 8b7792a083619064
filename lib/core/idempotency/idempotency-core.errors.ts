import { ResilienceError, isResilienceError } from '../errors.js';
import { retryAfterSeconds } from '../retry-after.js';
import { isCommitOutcomeUnknown, storeFailureOf, type StoreFailure } from './store-failure.js';

/**
 * Stable `code` values of the problems the idempotency layer answers with.
 * @publicApi
 */
export const IdempotencyErrorCode = {
  /** 400: the route requires a key and none was sent. */
  KeyMissing: 'idempotency_key_missing',
  /** 400: the key breaks the key grammar (1–255 characters; one RFC 8941 string, or a bare key). */
  KeyInvalid: 'idempotency_key_invalid',
  /** 400: the body is nested deeper than `maxBodyDepth`, so it cannot be fingerprinted. */
  BodyTooDeep: 'idempotency_body_too_deep',
  /** 413: the body's canonical JSON is larger than `maxBodyBytes`, so it cannot be fingerprinted. */
  BodyTooLarge: 'idempotency_body_too_large',
  /** 409: a request with this key is still running; retry later with the same key. */
  RequestInProgress: 'idempotency_request_in_progress',
  /** 422: the key was already used for a different request. */
  KeyReused: 'idempotency_key_reused',
  /** 503: the idempotency store is unreachable or dropped the connection; the request was not executed. */
  StoreUnavailable: 'idempotency_store_unavailable',
  /** 503: no database connection was free within the pool's checkout timeout; the request was not executed. */
  StorePoolExhausted: 'idempotency_store_pool_exhausted',
  /** 503: a lock or statement of the store timed out (or lost a deadlock); the request was not executed. */
  StoreTimeout: 'idempotency_store_timeout',
  /** 503: the bounded in-memory store is full of requests in progress; the request was not executed. */
  StoreFull: 'idempotency_store_full',
  /** 500: transactional mode could not store the response, so the handler's writes were rolled back. */
  ResponseNotStorable: 'idempotency_response_not_storable',
  /**
   * The original status (2xx for a success): a replay of a request whose response body was not
   * kept (larger than `maxResponseBytes`, or a stream or file). It was executed; do not retry it.
   */
  ResponseNotKept: 'idempotency_response_not_kept',
} as const;

/**
 * One of the {@link IdempotencyErrorCode} values.
 * @publicApi
 */
export type IdempotencyErrorCodeValue = (typeof IdempotencyErrorCode)[keyof typeof IdempotencyErrorCode];

const CODES: ReadonlySet<string> = new Set(Object.values(IdempotencyErrorCode));

/** What every idempotency error is built from. */
interface IdempotencyErrorInit {
  readonly status: number;
  readonly title: string;
  readonly detail: string;
  readonly retryAfterMs?: number;
  readonly headerName?: string;
  readonly cause?: unknown;
}

/**
 * A request the idempotency core refused (or could not serve) before or instead of answering with
 * the handler's outcome. Framework-free: the HTTP adapter turns it into an RFC 9457 problem+json
 * response (`status`, `code`, `title`, `detail`, and `Retry-After` from `retryAfterMs`).
 *
 * `message` is for operators (logs); `detail` is the sentence safe to send to the client: it never
 * contains the underlying error's message, which is kept as `cause`.
 * @publicApi
 */
export abstract class IdempotencyError extends ResilienceError {
  /** Stable machine-readable code (the problem's `code`). */
  abstract override readonly code: IdempotencyErrorCodeValue;
  /** HTTP status of the answer. */
  readonly status: number;
  /** Short summary, the problem's `title`. */
  readonly title: string;
  /** Client-safe explanation, the problem's `detail`. */
  readonly detail: string;
  /** How long the client should wait before retrying with the same key, in ms (`Retry-After`). */
  readonly retryAfterMs?: number;
  /** The key header as configured (`Idempotency-Key`), for errors about the key. */
  readonly headerName?: string;

  protected constructor(message: string, init: IdempotencyErrorInit) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.status = init.status;
    this.title = init.title;
    this.detail = init.detail;
    if (init.retryAfterMs !== undefined) this.retryAfterMs = init.retryAfterMs;
    if (init.headerName !== undefined) this.headerName = init.headerName;
  }
}

/**
 * 400 `idempotency_key_missing`: the route requires a key and the request has none.
 * @publicApi
 */
export class IdempotencyKeyMissingError extends IdempotencyError {
  readonly code = IdempotencyErrorCode.KeyMissing;
  constructor(headerName: string) {
    super(`The request has no ${headerName} header, which this route requires; the client must send a new unique key with each new request (or set required: false on the route).`, {
      status: 400,
      title: `${headerName} is missing`,
      detail: `This operation is idempotent and requires an ${headerName} header: send a new unique key (a UUID) with each new request, and the same key only when retrying it.`,
      headerName,
    });
  }
}

/**
 * 400 `idempotency_key_invalid`: the key is malformed; `reason` says how (it describes the value,
 * never echoes it).
 * @publicApi
 */
export class IdempotencyKeyInvalidError extends IdempotencyError {
  readonly code = IdempotencyErrorCode.KeyInvalid;
  constructor(
    headerName: string,
    /** What is wrong with the value, e.g. "the key is empty". */
    readonly reason: string,
  ) {
    super(`The ${headerName} of the request was refused (${reason}); the client must send one quoted RFC 8941 string of 1 to 255 printable ASCII characters, or a bare UUID.`, {
      status: 400,
      title: `${headerName} is invalid`,
      detail: `The ${headerName} header was refused: ${reason}. Send one quoted string of 1 to 255 printable ASCII characters, such as "8e03978e-40d5-43e8-bc93-6894a57f9324".`,
      headerName,
    });
  }
}

/**
 * 400 `idempotency_body_too_deep`: the request body is nested deeper than the route's
 * `maxBodyDepth`; it was refused before the key was claimed, so nothing was run or stored.
 * @publicApi
 */
export class IdempotencyBodyTooDeepError extends IdempotencyError {
  readonly code = IdempotencyErrorCode.BodyTooDeep;
  constructor(
    /** The route's `maxBodyDepth`. */
    readonly maxDepth: number,
  ) {
    super(`The request body is nested more than ${maxDepth} levels deep, so it was refused before its idempotency key was claimed; raise maxBodyDepth on the route if such bodies are legitimate.`, {
      status: 400,
      title: 'Request body nested too deeply',
      detail: `The request body is nested more than ${maxDepth} levels deep. Send a flatter body; nothing was executed or stored.`,
    });
  }
}

/**
 * 413 `idempotency_body_too_large`: the request body's canonical JSON is larger than the route's
 * `maxBodyBytes`; it was refused before the key was claimed, so nothing was run or stored.
 * @publicApi
 */
export class IdempotencyBodyTooLargeError extends IdempotencyError {
  readonly code = IdempotencyErrorCode.BodyTooLarge;
  constructor(
    /** The route's `maxBodyBytes`. */
    readonly maxBytes: number,
  ) {
    super(`The request body is larger than ${maxBytes} bytes of canonical JSON, so it was refused before its idempotency key was claimed; raise maxBodyBytes on the route if such bodies are legitimate.`, {
      status: 413,
      title: 'Request body too large',
      detail: `The request body is larger than ${maxBytes} bytes. Send a smaller body; nothing was executed or stored.`,
    });
  }
}

/**
 * 409 `idempotency_request_in_progress`: another request with this key holds a live lease;
 * `retryAfterMs` is what is left of it.
 * @publicApi
 */
export class IdempotencyRequestInProgressError extends IdempotencyError {
  readonly code = IdempotencyErrorCode.RequestInProgress;
  declare readonly retryAfterMs: number;
  constructor(headerName: string, retryAfterMs: number) {
    const seconds = retryAfterSeconds(retryAfterMs);
    super(`A request with this ${headerName} is still running; the client should retry with the same key in ${seconds} s.`, {
      status: 409,
      title: `A request is outstanding for this ${headerName}`,
      detail: `A request with this ${headerName} is still being processed. Retry in ${seconds} s with the same key to receive its response.`,
      retryAfterMs,
      headerName,
    });
  }
}

/**
 * 422 `idempotency_key_reused`: the key was already used for a request with another fingerprint
 * (method, path, query or body).
 * @publicApi
 */
export class IdempotencyKeyReusedError extends IdempotencyError {
  readonly code = IdempotencyErrorCode.KeyReused;
  constructor(headerName: string) {
    super(`This ${headerName} was already used for a different request; the client must send a new key for a new request and reuse a key only to retry the identical request.`, {
      status: 422,
      title: `${headerName} is already used`,
      detail: `This ${headerName} was already used for a different request (method, path, query or body differ). Send a new key for a new request; reuse a key only to retry the identical request.`,
      headerName,
    });
  }
}

/** What each {@link StoreFailure} is answered with, and the fix named to operators. */
const STORE_FAILURES = {
  unavailable: {
    code: IdempotencyErrorCode.StoreUnavailable,
    title: 'Idempotency store unavailable',
    client: 'its idempotency key could not be recorded',
    operator: 'the idempotency store could not be reached or dropped the connection; check the database and the connection settings',
  },
  pool_exhausted: {
    code: IdempotencyErrorCode.StorePoolExhausted,
    title: 'Idempotency store busy',
    client: 'no database connection was free to record its idempotency key',
    operator: 'no database connection was free within the pool\'s checkout timeout; size the pool for this instance\'s concurrency (docs/stores.md#sizing-the-database-pool) or cap the concurrency with @Bulkhead()',
  },
  timeout: {
    code: IdempotencyErrorCode.StoreTimeout,
    title: 'Idempotency store timed out',
    client: 'recording its idempotency key timed out',
    operator: 'a lock or statement of the idempotency store timed out (lock or statement timeout, deadlock, SQLite busy); look for long transactions on the idempotency table or raise lockTimeout',
  },
  full: {
    code: IdempotencyErrorCode.StoreFull,
    title: 'Idempotency store full',
    client: 'too many requests are in progress to record its idempotency key',
    operator:
      'the in-memory idempotency store is full of requests still in progress (it only evicts completed ones); raise its maxRecords or maxBytes, cap concurrency with @Bulkhead(), or use TypeOrmIdempotencyStore or RedisIdempotencyStore',
  },
} as const satisfies Record<StoreFailure, { code: IdempotencyErrorCodeValue; title: string; client: string; operator: string }>;

/**
 * 503 with `Retry-After`: the key could not be recorded, so nothing was executed or kept. The
 * `code` says why ({@link storeFailureOf} of the cause): `idempotency_store_unavailable` (database
 * unreachable or connection dropped; also the code of unclassified store errors),
 * `idempotency_store_pool_exhausted` (no pooled connection free in time),
 * `idempotency_store_timeout` (a lock or statement timed out) or `idempotency_store_full` (the
 * bounded in-memory store is full of requests in progress). `cause` is the store's error: it
 * goes to the logs, never to the client. When the cause is a `CommitOutcomeUnknownError` (COMMIT
 * sent, no answer) the request may have been committed: `outcomeUnknown` is set and the detail
 * says that the retry gets its response if it was.
 * @publicApi
 */
export class IdempotencyStoreUnavailableError extends IdempotencyError {
  readonly code: (typeof STORE_FAILURES)[StoreFailure]['code'];
  /** Which store failure this is. */
  readonly failure: StoreFailure;
  /** COMMIT was sent and not answered: the record, read by the retry, tells whether it happened. */
  readonly outcomeUnknown: boolean;
  declare readonly retryAfterMs: number;
  constructor(retryAfterMs: number, cause?: unknown, failure: StoreFailure = storeFailureOf(cause) ?? 'unavailable') {
    const seconds = retryAfterSeconds(retryAfterMs);
    const text = STORE_FAILURES[failure];
    const outcomeUnknown = isCommitOutcomeUnknown(cause);
    super(
      outcomeUnknown
        ? `The request's commit was sent but not confirmed because ${text.operator} (the cause is attached); the client may retry with the same key in ${seconds} s and gets the stored response if the commit happened.`
        : `The request was not executed because ${text.operator} (the cause is attached); the client may retry with the same key in ${seconds} s.`,
      {
        status: 503,
        title: text.title,
        detail: outcomeUnknown
          ? `The database did not confirm this request's commit in time, so whether it was applied is not known yet. Retry in ${seconds} s with the same key: you get its response if it was applied, and it runs if it was not.`
          : `The request was not executed because ${text.client}. Retry in ${seconds} s with the same key.`,
        retryAfterMs,
        cause,
      },
    );
    this.code = text.code;
    this.failure = failure;
    this.outcomeUnknown = outcomeUnknown;
  }
}

/**
 * 500 `idempotency_response_not_storable` (transactional mode): the handler's response could not
 * be stored (its status is not one `storeIf` stores), so its writes were rolled back. `reason` is
 * a client-safe summary. A body that is too large or not replayable is not this error: its
 * outcome is committed without the body ({@link IdempotencyResponseNotKeptError} on replay).
 * @publicApi
 */
export class IdempotencyResponseNotStorableError extends IdempotencyError {
  readonly code = IdempotencyErrorCode.ResponseNotStorable;
  constructor(
    /** Client-safe reason, e.g. "the response body is larger than the configured limit". */
    readonly reason: string,
  ) {
    super(`The response of a transactional idempotent request could not be stored (${reason}), so its writes were rolled back; let storeIf store this status, or drop transactional.`, {
      status: 500,
      title: 'Response could not be stored',
      detail: `The response of this transactional idempotent request could not be stored (${reason}), so its database writes were rolled back and nothing happened. Retrying with the same key runs it again.`,
    });
  }
}

/**
 * The answer to a replay whose original response was kept without its body: the **original
 * status** (a 2xx when it succeeded, so no client takes it for a failure and sends the operation
 * again under a new key) with the problem `idempotency_response_not_kept`. The original was
 * executed once; its replayable headers (`Location`, `ETag`…) are replayed with it.
 * @publicApi
 */
export class IdempotencyResponseNotKeptError extends IdempotencyError {
  readonly code = IdempotencyErrorCode.ResponseNotKept;
  constructor(
    /** The original response's status, answered again. */
    status: number,
    /** Why the body was not kept: `too_large` (over `maxResponseBytes`) or `unreplayable` (a stream, a file…). */
    readonly reason: 'too_large' | 'unreplayable',
    /** Size of the body that was not kept, in bytes (0 when unknown). */
    readonly bytes: number,
    headerName: string,
  ) {
    const outcome = status < 400 ? `succeeded (status ${status})` : `was answered ${status}`;
    const why = reason === 'too_large' ? `its response body (${bytes} bytes) was larger than the server keeps for replay` : 'its response was a stream or a file, which the server does not keep for replay';
    super(`A retry with this ${headerName} got the problem idempotency_response_not_kept: the original request ${outcome}, but ${why}.`, {
      status,
      title: 'Response not kept for replay',
      detail: `The original request with this ${headerName} ${outcome} and was not executed again, but ${why}. Do not retry it: get the result another way (its Location, if one is given).`,
      headerName,
    });
  }
}

/**
 * Whether `error` is an {@link IdempotencyError} (also across duplicated module copies).
 * @publicApi
 */
export function isIdempotencyError(error: unknown): error is IdempotencyError {
  return isResilienceError(error) && CODES.has(error.code);
}
