import type { RequestInfo, RequestInfoSource } from '../context/context-frame.js';
import { isProblemDetailsException, ProblemDetailsException } from '../http/problem-details.js';
import type { ResolvedIdempotencyOptions } from '../core/idempotency/idempotency-options.interface.js';
import type { ContextAdapter, ContextHandler, ContextHost, HandlerProfile, IdempotentCall } from './context-adapter.js';
import { contextRequest } from './context-request.js';
import { DetachedCallerHooks, PeerExport, ValueIdempotentCall } from './value-call.js';
import { storedFailureProblem } from './value-replay.js';

/** `@Processor()` metadata of `@nestjs/bullmq` (read by name, so classifying never loads it). */
const BULLMQ_PROCESSOR = 'bullmq:processor_metadata';

/** What the adapter reads of a BullMQ job (any BullMQ 5 or 6 `Job`). */
interface JobLike {
  readonly id?: string;
  readonly name?: string;
  readonly queueName?: string;
  readonly data?: unknown;
  readonly attemptsStarted?: number;
  readonly attemptsMade?: number;
  readonly deduplicationId?: string;
  readonly opts?: { readonly attempts?: number; readonly deduplication?: { readonly id?: string } };
  moveToDelayed?(timestamp: number, token?: string): Promise<void>;
}

/** What the adapter uses of the processor's worker (`WorkerHost.worker`). */
interface WorkerLike {
  pause(doNotWaitActive?: boolean): Promise<void>;
  resume(): Promise<void> | void;
  isPaused(): boolean;
}

/** The error classes of the application's own `bullmq`, loaded at start-up. */
interface BullErrors {
  readonly DelayedError: new (message?: string) => Error;
  readonly UnrecoverableError: new (message?: string) => Error;
}

/**
 * Problems whose handler never ran (the call was refused before it: an open circuit, a full
 * bulkhead, a duplicate whose first delivery still runs, the idempotency store down): delayed
 * whatever the job's attempts and the processor's retries say.
 */
const REFUSED_BEFORE_RUNNING: ReadonlySet<string> = new Set(['circuit_open', 'bulkhead_rejected', 'idempotency_request_in_progress', 'idempotency_store_unavailable']);

/**
 * The error a BullMQ processor's job fails with when the library gives up on it for good: BullMQ's
 * own `UnrecoverableError` (no further attempts), carrying the problem's `code`, `status` and
 * `detail` so `job.failedReason` and `failed` listeners can tell why.
 * @publicApi
 */
export interface JobProblem {
  readonly code: string;
  readonly status: number;
  readonly detail: string;
  readonly retryAfterMs?: number;
}

/**
 * A transient problem with a known delay, as the job adapter answers it: the engine moves the job
 * to BullMQ's delayed set for `delayMs` (the dependency's `Retry-After`, the breaker's remaining
 * open time) instead of failing it, and pauses the worker while a circuit is open.
 * @internal
 */
export class JobDelay extends Error {
  constructor(
    readonly problem: ProblemDetailsException,
    readonly delayMs: number,
  ) {
    super(`${problem.problem.code}: ${problem.problem.detail}`);
    this.name = 'JobDelay';
  }
}

/** The profile of a processor's `process`: its queue and whether the library retries it itself. */
export interface JobProfile extends HandlerProfile {
  readonly queue: string;
  /** Whether the processor has `@Retryable()` with more than one attempt: its retries spent, the job fails for good. */
  readonly retriedInProcess: boolean;
}

/**
 * BullMQ processors (`@nestjs/bullmq`, `WorkerHost.process(job, token)`), called by the worker,
 * not Nest's router: host `[job, token]`. Request id: the job id. Errors become what BullMQ acts
 * on, so the queue's own retries and the library's never multiply:
 * - a transient problem with a known delay (`Retry-After`, an open circuit, a full bulkhead, a
 *   duplicate still in flight) moves the job to delayed with that delay (`JobDelay`, then
 *   `DelayedError`), while the job has attempts left (`opts.attempts`);
 * - any other problem the library produced, and a transient one after the handler's own
 *   `@Retryable()` spent its attempts, fails the job without further attempts (`UnrecoverableError`);
 * - the handler's own errors pass through: the queue's attempts and backoff apply as without the library.
 * `@Idempotent()` keys a job by its deduplication id or its id (`key: (job) => …` to choose).
 * @internal
 */
export class JobContextAdapter extends DetachedCallerHooks implements ContextAdapter {
  readonly type = 'job' as const;
  readonly handlerNoun = 'BullMQ job processor';
  private readonly errors = new PeerExport<BullErrors>(
    async () => {
      const bullmq = (await import('bullmq')) as unknown as BullErrors;
      return { DelayedError: bullmq.DelayedError, UnrecoverableError: bullmq.UnrecoverableError };
    },
    'A BullMQ processor ran before ResilienceModule prepared the job context. Import ResilienceModule in the root module of the application that registers the processor.',
  );
  /** Resume timers of the workers paused while a circuit is open. */
  private readonly paused = new WeakMap<object, ReturnType<typeof setTimeout>>();

  prepare(): Promise<void> {
    return this.errors.prepare();
  }

  /** `retriedInProcess` is filled in by {@link withRetries} once the handler's policy is known. */
  profile(handler: ContextHandler): JobProfile {
    const metadata = Reflect.getMetadata(BULLMQ_PROCESSOR, handler.classRef) as { name?: unknown } | string | undefined;
    const queue = typeof metadata === 'string' ? metadata : typeof metadata?.name === 'string' ? metadata.name : handler.where;
    return { handler, operation: queue, queue, answersCaller: false, retriedInProcess: false };
  }

  /** The profile of a processor whose policy retries in process (`@Retryable()` with `maxAttempts` above 1). */
  withRetries(profile: HandlerProfile, retriedInProcess: boolean): JobProfile {
    return { ...(profile as JobProfile), retriedInProcess };
  }

  describe(host: ContextHost, profile: HandlerProfile): RequestInfoSource {
    let info: RequestInfo | undefined;
    return { request: host[0], contextType: 'job', info: () => (info ??= jobInfo(host[0] as JobLike | undefined, profile as JobProfile)) };
  }

  renderError(error: unknown, host: ContextHost): unknown {
    return this.renderJobError(error, host, false);
  }

  /** See the class comment: a `JobDelay`, an `UnrecoverableError`, or the handler's own error. */
  renderJobError(error: unknown, host: ContextHost, retriedInProcess: boolean): unknown {
    if (!isProblemDetailsException(error)) return error;
    const { code } = error.problem;
    const delay = error.retryAfterMs;
    const job = host[0] as JobLike | undefined;
    const ranBefore = !REFUSED_BEFORE_RUNNING.has(code);
    if (delay !== undefined && (!ranBefore || (!retriedInProcess && attemptsLeft(job)))) return new JobDelay(error, delay);
    return this.unrecoverable(error);
  }

  /**
   * Settles a failed job the way BullMQ expects: a {@link JobDelay} moves it to delayed (and
   * pauses `worker` until a circuit it met half-opens); anything else is thrown as it is.
   */
  async settle(error: unknown, host: ContextHost, worker: WorkerLike | undefined): Promise<never> {
    if (!(error instanceof JobDelay)) throw error;
    const [job, token] = host as [JobLike | undefined, string | undefined];
    if (typeof job?.moveToDelayed !== 'function') throw this.unrecoverable(error.problem);
    if (error.problem.problem.code === 'circuit_open' && worker !== undefined) this.pauseWhileOpen(worker, error.delayMs);
    await job.moveToDelayed(Date.now() + error.delayMs, token);
    throw new (this.bull().DelayedError)(error.message);
  }

  /**
   * Stops `worker` from taking new jobs for `ms` (until the breaker half-opens and a job may
   * probe it): the jobs that would have met the open circuit wait in the queue, attempts intact.
   */
  private pauseWhileOpen(worker: WorkerLike, ms: number): void {
    if (this.paused.has(worker)) return;
    // without waiting for the active jobs: this job is one of them
    void worker.pause(true).catch(noop);
    const timer = setTimeout(() => {
      this.paused.delete(worker);
      void Promise.resolve(worker.resume()).catch(noop);
    }, ms);
    timer.unref?.();
    this.paused.set(worker, timer);
  }

  private unrecoverable(problem: ProblemDetailsException): Error {
    const { code, status, detail } = problem.problem;
    const error = new (this.bull().UnrecoverableError)(`${code}: ${detail}`);
    const fields: JobProblem = { code, status, detail, ...(problem.retryAfterMs === undefined ? {} : { retryAfterMs: problem.retryAfterMs }) };
    return Object.assign(error, fields, { cause: problem });
  }

  private bull(): BullErrors {
    return this.errors.get();
  }

  idempotencyOptions(options: ResolvedIdempotencyOptions): ResolvedIdempotencyOptions {
    const { key, scope } = options;
    return {
      ...options,
      // a job always carries its key: its deduplication id or its id
      keyResolver: key === undefined ? (job: JobLike) => job.deduplicationId ?? job.opts?.deduplication?.id ?? job.id : (job: JobLike) => (key as (job: unknown) => string | undefined)(job),
      scope: typeof scope === 'function' ? (job: JobLike) => (scope as (job: unknown) => string | undefined)(job) : scope,
    };
  }

  idempotentCall(host: ContextHost, profile: HandlerProfile, options: ResolvedIdempotencyOptions): IdempotentCall {
    return new JobIdempotentCall(this, host, profile as JobProfile, options, this.describe(host, profile));
  }
}

function noop(): void {}

/** Whether BullMQ would run the job again (attempts started so far below `opts.attempts`). */
function attemptsLeft(job: JobLike | undefined): boolean {
  const started = job?.attemptsStarted ?? (job?.attemptsMade ?? 0) + 1;
  return started < (job?.opts?.attempts ?? 1);
}

function jobInfo(job: JobLike | undefined, profile: JobProfile): RequestInfo {
  const attributes: Record<string, string> = {
    'messaging.system': 'bullmq',
    'messaging.destination.name': job?.queueName ?? profile.queue,
    'messaging.operation.type': 'process',
  };
  if (job?.id !== undefined) attributes['messaging.message.id'] = job.id;
  if (job?.name !== undefined) attributes['messaging.operation.name'] = job.name;
  return { requestId: job?.id, contextType: 'job', operation: profile.operation, attributes };
}

/** One job of an `@Idempotent()` processor: keyed by the job, fingerprinted by its name and data. */
class JobIdempotentCall extends ValueIdempotentCall {
  constructor(
    private readonly adapter: JobContextAdapter,
    private readonly host: ContextHost,
    private readonly profile: JobProfile,
    options: ResolvedIdempotencyOptions,
    source: RequestInfoSource,
  ) {
    const job = host[0] as JobLike;
    super(contextRequest('job', profile, options, source, { method: 'JOB', url: `${profile.queue}/${job?.name ?? ''}`, body: job?.data, request: job }), source);
  }

  /** A duplicate of a completed job completes with the stored value; a stored problem fails it again, for good. */
  protected override renderReplayed(error: unknown): unknown {
    return this.adapter.renderJobError(error, this.host, true);
  }

  protected storedError(_body: unknown, status: number): unknown {
    return this.renderReplayed(storedFailureProblem(status, 'An earlier run of this job failed; the failure was stored.'));
  }

  renderError(error: unknown): unknown {
    return this.adapter.renderJobError(error, this.host, this.profile.retriedInProcess);
  }
}
