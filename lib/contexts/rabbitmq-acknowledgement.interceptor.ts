import { Inject, Injectable, Logger, Optional, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { Observable } from 'rxjs';
import { isTransientError } from '../core/classify.js';
import { ResilienceConfigError } from '../core/errors.js';
import { isProblemDetailsException } from '../http/problem-details.js';

/**
 * What {@link RabbitMqAcknowledgement} does with a message whose handler failed transiently.
 * @publicApi
 */
export type RabbitMqTransientFailure = 'requeue' | 'dead-letter';

/**
 * Options of {@link RabbitMqAcknowledgement}.
 * @publicApi
 */
export interface RabbitMqAcknowledgementOptions {
  /**
   * A transient failure (the problem carries `retryAfterMs`: an open circuit, a full bulkhead, a
   * dependency unavailable after the retries, a store outage; or a transient error the handler
   * threw: a network error, 408, 429, 5xx):
   * - `'requeue'` (default): held unacknowledged for the failure's retry hint (capped by
   *   {@link maxRequeueDelayMs}), then `nack(message, false, true)`: the broker delivers it again,
   *   to this or another consumer. Nothing is lost without a dead-letter exchange, and the wait
   *   keeps a dependency outage from turning into a hot loop (a requeued message goes back to the
   *   head of the queue at once); the held messages count against `prefetchCount`, so the
   *   consumer takes fewer new ones while the dependency is down.
   * - `'dead-letter'`: `nack(message, false, false)`, as for a non-transient failure: the queue's
   *   dead-letter exchange gets it (a retry queue with a TTL, say). **Without one the broker drops
   *   the message.**
   */
  readonly onTransientFailure?: RabbitMqTransientFailure;
  /**
   * Longest wait before a transient failure is requeued, in ms (default 30 000; 0 requeues at once,
   * which loops as fast as the handler fails while the dependency is down).
   */
  readonly maxRequeueDelayMs?: number;
}

/** Lets Nest construct the interceptor from its class (`@UseInterceptors(RabbitMqAcknowledgement)`): nothing is provided under it, so the defaults apply. @internal */
export const RABBITMQ_ACKNOWLEDGEMENT_OPTIONS = Symbol('RABBITMQ_ACKNOWLEDGEMENT_OPTIONS');

const DEFAULT_MAX_REQUEUE_DELAY_MS = 30_000;
/** The wait of a transient error that carries no retry hint (the error mapper's default `Retry-After`). */
const DEFAULT_REQUEUE_DELAY_MS = 1_000;

/** The accessors of Nest's `RmqContext` this interceptor uses, read by shape (no runtime import of `@nestjs/microservices`). */
interface RmqContextLike {
  getChannelRef(): unknown;
  getMessage(): unknown;
}

/** The amqplib channel methods that settle a delivery. */
interface AmqpChannelLike {
  ack(message: object, allUpTo?: boolean): void;
  nack(message: object, allUpTo?: boolean, requeue?: boolean): void;
  reject(message: object, requeue?: boolean): void;
}

/** Deliveries already acknowledged, rejected or nacked through a channel this interceptor has seen. */
const settled = new WeakSet<object>();
const WATCHED = Symbol('nest-resilience.rabbitmq.watched');

/**
 * Records every delivery the channel settles (whoever settles it), so that the interceptor never
 * settles one twice: a second `ack` of a delivery tag makes the broker close the channel, and
 * every unacknowledged message on it is delivered again.
 */
function watch(channel: AmqpChannelLike): AmqpChannelLike {
  const watched = channel as AmqpChannelLike & { [WATCHED]?: true };
  if (watched[WATCHED]) return channel;
  for (const method of ['ack', 'nack', 'reject'] as const) {
    const original = channel[method] as (message: object, ...rest: boolean[]) => void;
    Object.defineProperty(channel, method, {
      configurable: true,
      writable: true,
      value(this: unknown, message: object, ...rest: boolean[]) {
        if (typeof message === 'object' && message !== null) settled.add(message);
        return original.call(this, message, ...rest);
      },
    });
  }
  Object.defineProperty(channel, WATCHED, { value: true });
  return channel;
}

function rmqContextOf(context: ExecutionContext): RmqContextLike | undefined {
  if (context.getType() !== 'rpc') return undefined;
  const rpc = context.switchToRpc().getContext<Partial<RmqContextLike> | undefined>();
  return typeof rpc?.getChannelRef === 'function' && typeof rpc.getMessage === 'function' ? (rpc as RmqContextLike) : undefined;
}

/**
 * How long to wait before requeueing after `error`, or `undefined` when the failure is not
 * transient. The library's own classification: a problem (as the handler's decorators answered
 * it, an `RpcException` carrying an `RpcProblem`) is transient when it carries `retryAfterMs`; any
 * other error by the default retry classifier (`isTransientError`).
 */
function transientDelayOf(error: unknown): number | undefined {
  if (isProblemDetailsException(error)) return error.retryAfterMs;
  const problem = rpcProblemOf(error);
  if (problem !== undefined) return typeof problem.retryAfterMs === 'number' && problem.retryAfterMs >= 0 ? problem.retryAfterMs : undefined;
  return isTransientError(error) ? DEFAULT_REQUEUE_DELAY_MS : undefined;
}

/** The `RpcProblem` of an `RpcException` (or an `RpcException`-like error) the library rendered. */
function rpcProblemOf(error: unknown): { status: number; code: string; retryAfterMs?: unknown } | undefined {
  const getError = (error as { getError?: unknown } | null)?.getError;
  if (typeof getError !== 'function') return undefined;
  const body: unknown = getError.call(error);
  if (typeof body !== 'object' || body === null) return undefined;
  const { status, code } = body as { status?: unknown; code?: unknown };
  return typeof status === 'number' && typeof code === 'string' ? (body as { status: number; code: string }) : undefined;
}

/**
 * Acknowledges RabbitMQ messages for handlers consumed with `noAck: false` (Nest's `Transport.RMQ`),
 * from around the handler, so that every outcome settles its message exactly once:
 * - the handler succeeded, **or `@Idempotent()` answered a duplicate from the store without
 *   running the handler's body**: `ack`;
 * - a non-transient failure (a 4xx-like problem, a timeout, a reused key, a bug in the handler):
 *   `nack(message, false, false)`, dead-lettered when the queue has a dead-letter exchange,
 *   dropped otherwise; a redelivery would fail the same way;
 * - a transient failure: see {@link RabbitMqAcknowledgementOptions.onTransientFailure} (requeued
 *   after its retry hint by default).
 *
 * Nest runs interceptors outside the handler's method, and the library's decorators live inside it,
 * so this sees the outcome after `@Retryable()`'s retries and `@Idempotent()`'s replay. The handler
 * must not acknowledge its message itself: if it does, the interceptor notices, settles nothing
 * (a second `ack` would make the broker close the channel) and logs a warning naming the handler.
 * With `noAck: true` (Nest's default) there is nothing to acknowledge: do not use it there (the
 * broker closes a channel that acknowledges an auto-acknowledged delivery). On any other context
 * (HTTP, another transport) it does nothing.
 * @example
 * @Controller()
 * @UseInterceptors(RabbitMqAcknowledgement) // or new RabbitMqAcknowledgement({ onTransientFailure: 'dead-letter' })
 * export class InvoicesConsumer {
 *   @EventPattern<string>('invoice.paid')
 *   @Idempotent()
 *   async paid(@Payload() event: InvoicePaid) { … }
 * }
 * @publicApi
 */
@Injectable()
export class RabbitMqAcknowledgement implements NestInterceptor {
  private readonly logger = new Logger('RabbitMqAcknowledgement');
  private readonly onTransientFailure: RabbitMqTransientFailure;
  private readonly maxRequeueDelayMs: number;
  /** Handlers already warned about acknowledging their message themselves. */
  private readonly warned = new Set<string>();

  constructor(@Optional() @Inject(RABBITMQ_ACKNOWLEDGEMENT_OPTIONS) options: RabbitMqAcknowledgementOptions = {}) {
    const { onTransientFailure = 'requeue', maxRequeueDelayMs = DEFAULT_MAX_REQUEUE_DELAY_MS } = options ?? {};
    if (onTransientFailure !== 'requeue' && onTransientFailure !== 'dead-letter') {
      throw new ResilienceConfigError(`RabbitMqAcknowledgement: onTransientFailure must be 'requeue' or 'dead-letter', got ${JSON.stringify(onTransientFailure)}.`);
    }
    if (!Number.isFinite(maxRequeueDelayMs) || maxRequeueDelayMs < 0) {
      throw new ResilienceConfigError(`RabbitMqAcknowledgement: maxRequeueDelayMs must be a finite number of ms, 0 or more, got ${String(maxRequeueDelayMs)}.`);
    }
    this.onTransientFailure = onTransientFailure;
    this.maxRequeueDelayMs = maxRequeueDelayMs;
  }

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const rmq = rmqContextOf(context);
    if (rmq === undefined) return next.handle();
    const channel = watch(rmq.getChannelRef() as AmqpChannelLike);
    const message = rmq.getMessage() as object;
    const where = `${context.getClass().name}.${context.getHandler().name}`;
    return new Observable((subscriber) =>
      next.handle().subscribe({
        next: (value) => subscriber.next(value),
        complete: () => {
          this.settle(channel, message, where, (ch) => ch.ack(message));
          subscriber.complete();
        },
        error: (error: unknown) => {
          this.settleFailure(channel, message, where, error);
          subscriber.error(error);
        },
      }),
    );
  }

  private settleFailure(channel: AmqpChannelLike, message: object, where: string, error: unknown): void {
    const delay = transientDelayOf(error);
    if (delay === undefined || this.onTransientFailure === 'dead-letter') {
      this.settle(channel, message, where, (ch) => ch.nack(message, false, false));
      return;
    }
    const wait = Math.min(delay, this.maxRequeueDelayMs);
    if (wait <= 0) {
      this.settle(channel, message, where, (ch) => ch.nack(message, false, true));
      return;
    }
    // held unacknowledged meanwhile; if the channel closes first, the broker redelivers it anyway
    setTimeout(() => this.settle(channel, message, where, (ch) => ch.nack(message, false, true)), wait).unref();
  }

  private settle(channel: AmqpChannelLike, message: object, where: string, action: (channel: AmqpChannelLike) => void): void {
    if (settled.has(message)) {
      if (!this.warned.has(where)) {
        this.warned.add(where);
        this.logger.warn(`${where} settled its RabbitMQ message itself (ack/nack/reject in the handler); RabbitMqAcknowledgement left it alone. Remove the handler's own acknowledgement: a duplicate answered by @Idempotent() never runs it.`);
      }
      return;
    }
    try {
      action(channel);
    } catch (error) {
      // a closed channel: the broker delivers the message again, and @Idempotent() recognises it
      this.logger.warn(`${where}: the RabbitMQ message could not be settled (${error instanceof Error ? error.message : String(error)}); the broker will deliver it again.`);
    }
  }
}
