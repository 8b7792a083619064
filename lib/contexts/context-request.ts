import type { RequestInfoSource } from '../context/context-frame.js';
import type { IdempotentRequest } from '../core/idempotency/idempotency-core.interface.js';
import type { ResolvedIdempotencyOptions } from '../core/idempotency/idempotency-options.interface.js';
import type { HandlerProfile, ResilienceContextType } from './context-adapter.js';

/** What one context says of its call, for {@link contextRequest}; the rest is the same everywhere outside HTTP. */
export interface ContextRequestFields {
  /** The kind of call in records and events (`MESSAGE`, `EVENT`, `MUTATION`, `JOB`, `CALL`). */
  readonly method: string;
  /** What the call addresses (a pattern, an event, a field, `queue/name`): part of the fingerprint. */
  readonly url: string;
  /** The payload the fingerprint covers. */
  readonly body: unknown;
  /** What the `key` and `scope` functions of the adapter's options are called with. */
  readonly request: unknown;
  /** The operation's name in events. @default the profile's operation */
  readonly route?: string;
  /** The call's out-of-band values, lower-case names (a message's headers). @default none */
  readonly headers?: IdempotentRequest['headers'];
  /** Whether the call carries an authenticated user. @default false */
  readonly hasUser?: boolean;
}

/**
 * The {@link IdempotentRequest} of one call outside HTTP: named after its handler, its request id
 * and OpenTelemetry attributes read from `source` only when an event asks for them.
 * @internal
 */
export function contextRequest(
  contextType: ResilienceContextType,
  profile: HandlerProfile,
  options: ResolvedIdempotencyOptions,
  source: RequestInfoSource,
  fields: ContextRequestFields,
): IdempotentRequest {
  return {
    name: profile.handler.where,
    options,
    route: profile.operation,
    headers: {},
    hasUser: false,
    ...fields,
    get requestId() {
      return source.info().requestId;
    },
    get attributes() {
      return source.info().attributes;
    },
    contextType,
  };
}
