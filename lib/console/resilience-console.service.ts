import { Inject, Injectable, Logger, Optional, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { hostname } from 'node:os';
import type { BulkheadSnapshot } from '../core/bulkhead.policy.js';
import type { CircuitBreakerSnapshot } from '../core/circuit-breaker.policy.js';
import type { TimerHandle } from '../core/clock.js';
import { ResilienceConfigError } from '../core/errors.js';
import type { ResilienceEvent, ResilienceEventName } from '../core/events.js';
import { ChaosControl, type ChaosFault, type ChaosRule, type ChaosRuleInit } from '../core/fault-injection.js';
import type { PolicyEnvironment } from '../core/policy.js';
import { PolicyRegistry } from '../core/policy-registry.js';
import type { RetryBudgetSnapshot } from '../core/retry-budget.js';
import { isObservedHttpClient, type HttpClientOriginState, type ObservedHttpClient } from '../http-client/http-client-state.js';
import type { ResolvedResilienceOptions } from '../interfaces/resilience-module-options.interface.js';
import type { ResilienceLogLevel } from '../observability/observability-options.interface.js';
import { ResilienceEvents } from '../observability/resilience-events.js';
import { resolveLoggingOptions, toLogRecord } from '../observability/resilience-logger.js';
import { RESILIENCE_POLICY_ENVIRONMENT, RESOLVED_RESILIENCE_OPTIONS } from '../resilience.constants.js';
import { RESILIENCE_CONSOLE_OPTIONS, type ResolvedConsoleOptions } from './resilience-console.options.js';
import { RingBuffer } from './ring-buffer.js';

/**
 * A breaker as the console shows it: its snapshot, its sparkline and, when it is shared, every
 * instance's view.
 * @publicApi
 */
export interface ConsoleBreaker extends CircuitBreakerSnapshot {
  /** Whether its outcomes go to the shared state backend (`circuitBreaker.shared`). */
  readonly shared: boolean;
  /** Calls, failures and refusals per sample (oldest first), one sample per `sampleInterval`. */
  readonly history: {
    /** Calls the breaker judged in each sample. */
    readonly calls: readonly number[];
    /** Of those, the ones that counted as failures. */
    readonly failures: readonly number[];
    /** Calls refused without running because the breaker was open. */
    readonly rejected: readonly number[];
  };
  /** The shared state every instance follows, for a shared breaker (`available: false` while the backend does not answer). */
  readonly fleet?: {
    /** Whether the backend answered the read; the other fields are absent when it did not. */
    readonly available: boolean;
    /** The shared state (`open` also covers the wait for a probe: half-open is per instance). */
    readonly state?: 'closed' | 'open';
    /** How long the shared break still lasts, in ms (0 once a probe may run). */
    readonly remainingMs?: number;
    /** Why the shared breaker opened, while it is open. */
    readonly reason?: string;
    /** Consecutive opens without a close (what a backoff `breakDuration` grows with). */
    readonly opens?: number;
  };
}

/**
 * A retry budget as the console shows it.
 * @publicApi
 */
export interface ConsoleBudget extends RetryBudgetSnapshot {
  /** The policy key. */
  readonly key: string;
  /** Whether every instance shares its window (`retry.budget.shared`). */
  readonly shared: boolean;
  /** The shared window of every instance, for a shared budget. */
  readonly fleet?: {
    /** Whether the backend answered the read; the figures are absent when it did not. */
    readonly available: boolean;
    /** Logical calls of every instance inside the shared window. */
    readonly calls?: number;
    /** Retries granted to every instance in the shared window. */
    readonly retries?: number;
    /** Retries the fleet may still take now (`allowance - retries`, rounded down, at least 0). */
    readonly remaining?: number;
    /** Retries the shared window allows in all (`ratio × calls + floor`). */
    readonly allowance?: number;
  };
}

/**
 * A chaos rule as the console shows it (a rule's own error is named, never serialised).
 * @publicApi
 */
export interface ConsoleChaosRule extends Omit<ChaosRule, 'fault'> {
  /** What it injects; an exception fault shows its error by name only. */
  readonly fault:
    | Exclude<ChaosFault, { kind: 'exception' }>
    | {
        /** Marks this fault as a thrown exception. */
        readonly kind: 'exception';
        /** Name of the error it throws (`InjectedFaultError` by default), or `'error factory'` when a function makes it. */
        readonly error: string;
      };
}

/**
 * Everything the console page shows, as `GET <path>/api/state` answers it and the live stream pushes it.
 * @publicApi
 */
export interface ConsoleState {
  /** When it was taken (wall clock ms). */
  readonly generatedAt: number;
  /** The process that answered. */
  readonly instance: {
    /** Host name of the machine or container it runs on. */
    readonly hostname: string;
    /** Its operating-system process id. */
    readonly pid: number;
    /** When its console started (wall clock ms). */
    readonly startedAt: number;
  };
  /** Time between two samples of the sparklines, in ms. */
  readonly sampleInterval: number;
  /** Every circuit breaker the registry keeps, with its sparkline and fleet view. */
  readonly breakers: readonly ConsoleBreaker[];
  /** Every bulkhead the registry keeps: calls running and queued against its limits. */
  readonly bulkheads: readonly BulkheadSnapshot[];
  /** Every retry budget the registry keeps, with its fleet view when shared. */
  readonly budgets: readonly ConsoleBudget[];
  /** The `HttpClient`s among the application's providers and the origins each has called. */
  readonly httpClients: ReadonlyArray<{
    /** The client's name (`@InjectHttpClient(name)`). */
    readonly name: string;
    /** The URL its relative paths resolve against. */
    readonly baseUrl: string;
    /** Each origin it called, with its breaker, pause and rate limit. */
    readonly origins: readonly HttpClientOriginState[];
  }>;
  /** The shared state backend (`forRoot({ sharedState })`): whether one is configured and answers. */
  readonly sharedState: {
    /** Whether `forRoot({ sharedState })` was given a backend. */
    readonly configured: boolean;
    /** Whether that backend answers now (false while shared policies use their in-process state). */
    readonly available: boolean;
  };
  /** Runtime chaos: whether it is enabled (`forRoot({ chaos: { enabled: true } })`), its rules, and names rules could target. */
  readonly chaos: {
    /** Whether runtime chaos is built into the pipelines, so rules can be added. */
    readonly enabled: boolean;
    /** The rules the application holds, switched on or off. */
    readonly rules: readonly ConsoleChaosRule[];
    /** Policy keys, routes, methods and HTTP client names a new rule could target, sorted. */
    readonly targets: readonly string[];
  };
  /** Whether actions are refused (`readOnly`). */
  readonly readOnly: boolean;
}

/**
 * One event of the console's list: the log record of a {@link ResilienceEvent} (the same sentence
 * and fields, keys hashed unless `logKeys`), numbered and stamped.
 * @publicApi
 */
export interface ConsoleEvent {
  /** Order of arrival, from 1. */
  readonly seq: number;
  /** When it arrived (wall clock ms). */
  readonly at: number;
  /** Which resilience event it is (`breaker_opened`, `retry`, `give_up`…). */
  readonly event: ResilienceEventName;
  /** Its log level (`false`: not logged). */
  readonly level: ResilienceLogLevel;
  /** The log sentence. */
  readonly msg: string;
  /** The policy key the event happened on. */
  readonly policy: string;
  /** Set when a chaos rule caused it. */
  readonly chaos?: true;
  readonly [field: string]: unknown;
}

/**
 * One action taken through the console.
 * @publicApi
 */
export interface ConsoleAction {
  /** Order in which it was taken, from 1. */
  readonly seq: number;
  /** When (wall clock ms). */
  readonly at: number;
  /** Who, from the guard's request user. */
  readonly actor: string;
  /** What was done: a breaker isolated or reset, or a chaos rule switched on, off, removed, or all cleared. */
  readonly action: 'isolate' | 'reset' | 'chaos_on' | 'chaos_off' | 'chaos_remove' | 'chaos_clear';
  /** The breaker key or chaos rule id. */
  readonly target: string;
  /** One sentence, as logged. */
  readonly summary: string;
}

/** A live page: how to write to it and close it. @internal */
export interface ConsoleStream {
  /** Writes one chunk; false when the client is not reading (its buffer is full). */
  write(chunk: string): boolean;
  /** Ends the stream. */
  close(): void;
  /** Bytes waiting to be sent to the client. */
  readonly pending: number;
}

/** Events that are not worth a line of the console: one per attempt or per refused call. */
const QUIET_EVENTS: ReadonlySet<ResilienceEventName> = new Set(['attempt_end', 'breaker_rejected', 'idempotency_executed']);
/** Events after which the page gets a fresh state at once instead of at the next sample. */
const STATE_EVENTS: ReadonlySet<ResilienceEventName> = new Set([
  'breaker_opened',
  'breaker_half_opened',
  'breaker_closed',
  'shared_state_unavailable',
  'shared_state_recovered',
]);
/** How soon after such an event the page gets the new state (several transitions at once make one push). */
const PUSH_DELAY_MS = 50;
/** A page whose connection holds this much unsent data is dropped (it reconnects and starts afresh). */
const MAX_PENDING_BYTES = 4 * 1024 * 1024;

interface BreakerHistory {
  last: { calls: number; failures: number; rejected: number };
  readonly calls: number[];
  readonly failures: number[];
  readonly rejected: number[];
}

/**
 * The console's read model and actions, over what the application already has: the policy registry
 * (breakers, bulkheads, budgets, shared state), the `HttpClient`s among its providers, the event
 * stream and the chaos rules. It keeps three bounded structures: the last `maxEvents` events, the last
 * `maxActions` actions, and `historySamples` samples per breaker kept by the registry (itself capped
 * at `maxPolicyKeys`); live pages are capped at `maxStreams`.
 * @publicApi
 */
@Injectable()
export class ResilienceConsole implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('ResilienceConsole');
  private readonly eventLog: RingBuffer<ConsoleEvent>;
  private readonly actionLog: RingBuffer<ConsoleAction>;
  private readonly history = new Map<string, BreakerHistory>();
  private readonly streams = new Set<ConsoleStream>();
  private readonly startedAt = Date.now();
  private clients: ObservedHttpClient[] = [];
  private unsubscribe?: () => void;
  private sampler?: TimerHandle;
  private pushTimer?: TimerHandle;
  private pushing = false;
  private readonly logging: ReturnType<typeof resolveLoggingOptions>;

  constructor(
    @Inject(RESILIENCE_CONSOLE_OPTIONS) private readonly options: ResolvedConsoleOptions,
    private readonly discovery: DiscoveryService,
    @Optional() private readonly registry?: PolicyRegistry,
    @Optional() private readonly events?: ResilienceEvents,
    @Optional() @Inject(RESILIENCE_POLICY_ENVIRONMENT) private readonly env?: PolicyEnvironment,
    @Optional() @Inject(RESOLVED_RESILIENCE_OPTIONS) resilience?: ResolvedResilienceOptions,
    @Optional() @Inject(ChaosControl) private readonly chaos?: ChaosControl | null,
  ) {
    this.eventLog = new RingBuffer(options.maxEvents);
    this.actionLog = new RingBuffer(options.maxActions);
    this.logging = resolveLoggingOptions(resilience);
  }

  /** Checks that `ResilienceModule` is there, finds the HTTP clients, starts sampling and listening. */
  onModuleInit(): void {
    if (this.registry === undefined || this.events === undefined || this.env === undefined) {
      throw new ResilienceConfigError(
        'ResilienceConsoleModule needs ResilienceModule in the same application. Import ResilienceModule.forRoot() (global by default; with isGlobal: false, import it in the module that imports the console).',
      );
    }
    if (this.options.guard === undefined) {
      this.logger.warn(`The resilience console on /${this.options.path} has no guard (allowUnauthenticated: true): anyone who reaches it can isolate breakers and inject faults.`);
    }
    this.clients = this.discovery
      .getProviders()
      .map((wrapper) => wrapper.instance as unknown)
      .filter(isObservedHttpClient);
    this.unsubscribe = this.events.subscribe((event) => this.record(event), { wants: (event) => !QUIET_EVENTS.has(event) });
    this.scheduleSample();
  }

  /** Stops sampling, listening and every live page. */
  onApplicationShutdown(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    if (this.sampler !== undefined) this.env?.clock.clearTimeout(this.sampler);
    if (this.pushTimer !== undefined) this.env?.clock.clearTimeout(this.pushTimer);
    this.sampler = undefined;
    this.pushTimer = undefined;
    for (const stream of this.streams) stream.close();
    this.streams.clear();
  }

  /** Everything the page shows now; shared breakers and budgets are read from the backend (bounded by its `maxWait`). */
  async state(): Promise<ConsoleState> {
    const registry = this.registry!;
    let fleetReads = this.options.maxFleetReads;
    const breakers = await Promise.all(
      registry.circuitBreakers().map(async (snapshot): Promise<ConsoleBreaker> => {
        const policy = registry.findCircuitBreaker(snapshot.key);
        const shared = policy?.shared ?? false;
        const history = this.history.get(snapshot.key);
        const view: ConsoleBreaker = {
          ...snapshot,
          shared,
          history: history === undefined ? { calls: [], failures: [], rejected: [] } : { calls: [...history.calls], failures: [...history.failures], rejected: [...history.rejected] },
        };
        if (!shared || fleetReads-- <= 0) return view;
        const fleet = await policy!.readShared();
        return { ...view, fleet: fleet === undefined ? { available: false } : { available: true, state: fleet.state, remainingMs: fleet.remainingMs, reason: fleet.reason, opens: fleet.opens } };
      }),
    );
    const budgets = await Promise.all(
      registry.retryBudgets().map(async (budget): Promise<ConsoleBudget> => {
        if (!budget.shared || fleetReads-- <= 0) return budget;
        const fleet = await registry.findSharedRetryBudget(budget.key)?.readShared();
        return { ...budget, fleet: fleet === undefined ? { available: false } : { available: true, calls: fleet.calls, retries: fleet.retries, remaining: fleet.remaining, allowance: fleet.allowance } };
      }),
    );
    return {
      generatedAt: Date.now(),
      instance: { hostname: hostname(), pid: process.pid, startedAt: this.startedAt },
      sampleInterval: this.options.sampleInterval,
      breakers,
      bulkheads: registry.bulkheads(),
      budgets,
      httpClients: this.clients.map((client) => ({ name: client.name, baseUrl: client.baseUrl, origins: client.originStates() })),
      sharedState: { configured: registry.sharedState !== undefined, available: registry.sharedStateAvailable ?? false },
      chaos: this.chaosState(),
      readOnly: this.options.readOnly,
    };
  }

  /** The events kept (oldest first), after `since` when given. */
  recentEvents(since = 0): ConsoleEvent[] {
    return this.eventLog.toArray().filter((event) => event.seq > since);
  }

  /** The actions kept (oldest first). */
  actions(): ConsoleAction[] {
    return this.actionLog.toArray();
  }

  /** Isolates the breaker `key` (every call fails fast until reset), logged with `actor`. */
  isolate(key: string, actor: string): ConsoleAction {
    this.requireWritable();
    this.breaker(key).isolate();
    return this.act(actor, 'isolate', key, `isolated circuit breaker ${key}`);
  }

  /** Resets (closes) the breaker `key` (a shared one for every instance), logged with `actor`. */
  reset(key: string, actor: string): ConsoleAction {
    this.requireWritable();
    this.breaker(key).reset();
    return this.act(actor, 'reset', key, `reset circuit breaker ${key}`);
  }

  /** Switches a chaos rule on (or off with `enabled: false`), logged with `actor`. */
  setChaosRule(init: ChaosRuleInit, actor: string): ConsoleChaosRule {
    this.requireWritable();
    const rule = this.requireChaos().inject(init, actor);
    this.act(actor, rule.enabled ? 'chaos_on' : 'chaos_off', rule.id, `switched chaos rule ${rule.id} ${rule.enabled ? 'on' : 'off'}: ${describeRule(rule)}`);
    return consoleRule(rule);
  }

  /** Removes the chaos rule `id`, logged with `actor`. */
  removeChaosRule(id: string, actor: string): void {
    this.requireWritable();
    const control = this.requireChaos();
    const rule = control.get(id);
    if (rule === undefined || !control.remove(id)) throw new ResilienceConfigError(`No chaos rule has the id "${id}".`);
    this.act(actor, 'chaos_remove', id, `removed chaos rule ${id}: ${describeRule(rule)}`);
  }

  /** Removes every chaos rule, logged with `actor`; how many there were. */
  clearChaos(actor: string): number {
    this.requireWritable();
    const removed = this.requireChaos().clear();
    this.act(actor, 'chaos_clear', '*', `removed every chaos rule (${removed})`);
    return removed;
  }

  /** The chaos part of the state. */
  chaosState(): ConsoleState['chaos'] {
    const control = this.chaos ?? undefined;
    if (control === undefined) return { enabled: false, rules: [], targets: [] };
    const targets = new Set<string>();
    for (const site of control.sites()) {
      targets.add(site.policy);
      if (site.route !== undefined) targets.add(site.route);
      if (site.method !== undefined) targets.add(site.method);
      if (site.httpClient !== undefined) targets.add(site.httpClient);
    }
    return { enabled: true, rules: control.rules().map(consoleRule), targets: [...targets].sort() };
  }

  /**
   * Adds a live page: it gets a state at once, then a state per sample, each event and each action.
   * @returns the function that removes it, or `undefined` when `maxStreams` pages are open already.
   * @internal
   */
  openStream(stream: ConsoleStream): (() => void) | undefined {
    if (this.streams.size >= this.options.maxStreams) return undefined;
    this.streams.add(stream);
    // the browser reconnects by itself after this long when the connection drops
    stream.write('retry: 2000\n\n');
    this.schedulePush(0);
    return () => {
      this.streams.delete(stream);
    };
  }

  /** Live pages open now. @internal */
  get streamCount(): number {
    return this.streams.size;
  }

  private breaker(key: string) {
    if (typeof key !== 'string' || key === '') throw new ResilienceConfigError('Name the circuit breaker: send { "key": "<policy key>" }.');
    const breaker = this.registry!.findCircuitBreaker(key);
    if (breaker === undefined) {
      const known = this.registry!.circuitBreakers().map((snapshot) => snapshot.key);
      throw new UnknownConsoleTargetError(`No circuit breaker has the key "${key}".${known.length === 0 ? '' : ` Known keys: ${known.slice(0, 20).map((k) => `"${k}"`).join(', ')}.`}`);
    }
    return breaker;
  }

  private requireChaos(): ChaosControl {
    if (!this.chaos) {
      throw new ChaosDisabledError('Chaos is off in this application. Enable it with ResilienceModule.forRoot({ chaos: { enabled: true } }) (refused in production unless allowInProduction: true).');
    }
    return this.chaos;
  }

  private requireWritable(): void {
    if (this.options.readOnly) throw new ConsoleReadOnlyError('This resilience console is read-only (readOnly: true): actions are refused.');
  }

  private act(actor: string, action: ConsoleAction['action'], target: string, summary: string): ConsoleAction {
    const entry = this.actionLog.push((seq) => ({ seq, at: Date.now(), actor, action, target, summary }));
    this.logger.warn({ msg: `${actor} ${summary} (resilience console)`, event: 'console_action', action, target, actor });
    this.broadcast('audit', JSON.stringify(entry));
    this.schedulePush(0);
    return entry;
  }

  private record(event: ResilienceEvent): void {
    // other listeners (metrics) may have these produced anyway: they are still not kept
    if (QUIET_EVENTS.has(event.event)) return;
    const level = this.logging.levels[event.event];
    const entry = this.eventLog.push((seq) => ({ seq, at: Date.now(), level, ...toLogRecord(event, this.logging) }) as ConsoleEvent);
    if (this.streams.size === 0) return;
    this.broadcast('event', JSON.stringify(entry));
    if (STATE_EVENTS.has(event.event)) this.schedulePush(PUSH_DELAY_MS);
  }

  /** Takes one sample of every breaker's counters, then schedules the next (and a push to live pages). */
  private scheduleSample(): void {
    const clock = this.env!.clock;
    this.sampler = clock.setTimeout(() => {
      this.sample();
      this.scheduleSample();
      if (this.streams.size > 0) this.schedulePush(0);
    }, this.options.sampleInterval);
    unref(this.sampler);
  }

  private sample(): void {
    const registry = this.registry!;
    const seen = new Set<string>();
    for (const { key } of registry.circuitBreakers()) {
      const breaker = registry.findCircuitBreaker(key);
      if (breaker === undefined) continue;
      seen.add(key);
      const now = breaker.counters();
      const history = this.history.get(key);
      if (history === undefined) {
        // the first reading is the baseline: a breaker's past before the console knew it is not one sample
        this.history.set(key, { last: now, calls: [], failures: [], rejected: [] });
        continue;
      }
      pushBounded(history.calls, now.calls - history.last.calls, this.options.historySamples);
      pushBounded(history.failures, now.failures - history.last.failures, this.options.historySamples);
      pushBounded(history.rejected, now.rejected - history.last.rejected, this.options.historySamples);
      history.last = now;
    }
    // breakers the registry let go (evicted) take their history with them
    for (const key of this.history.keys()) if (!seen.has(key)) this.history.delete(key);
  }

  private schedulePush(delay: number): void {
    if (this.streams.size === 0 || this.pushTimer !== undefined) return;
    const clock = this.env!.clock;
    this.pushTimer = clock.setTimeout(() => {
      this.pushTimer = undefined;
      void this.push();
    }, delay);
    unref(this.pushTimer);
  }

  private async push(): Promise<void> {
    if (this.pushing || this.streams.size === 0) return;
    this.pushing = true;
    try {
      this.broadcast('state', JSON.stringify(await this.state()));
    } catch (error) {
      this.logger.error({ msg: 'The resilience console could not build its state', cause: error instanceof Error ? `${error.name}: ${error.message}` : String(error) });
    } finally {
      this.pushing = false;
    }
  }

  private broadcast(name: string, data: string): void {
    const message = `event: ${name}\ndata: ${data}\n\n`;
    for (const stream of this.streams) {
      // a page that stopped reading is dropped rather than buffered without end
      if (stream.pending > MAX_PENDING_BYTES) {
        this.streams.delete(stream);
        stream.close();
        continue;
      }
      stream.write(message);
    }
  }
}

/** A breaker key the console does not know (answered 404). @internal */
export class UnknownConsoleTargetError extends ResilienceConfigError {}
/** Chaos asked of an application without it (answered 409). @internal */
export class ChaosDisabledError extends ResilienceConfigError {}
/** An action on a read-only console (answered 403). @internal */
export class ConsoleReadOnlyError extends ResilienceConfigError {}

function pushBounded(values: number[], value: number, max: number): void {
  values.push(value);
  if (values.length > max) values.splice(0, values.length - max);
}

function unref(handle: unknown): void {
  (handle as { unref?: () => void } | undefined)?.unref?.();
}

function consoleRule(rule: ChaosRule): ConsoleChaosRule {
  const { fault } = rule;
  if (fault.kind !== 'exception') return rule as ConsoleChaosRule;
  const error = fault.error === undefined ? 'InjectedFaultError' : fault.error instanceof Error ? fault.error.name : 'error factory';
  return { ...rule, fault: { kind: 'exception', error } };
}

function describeRule(rule: ChaosRule): string {
  const { fault } = rule;
  const what = fault.kind === 'latency' ? `latency ${fault.ms} ms` : fault.kind === 'http' ? `HTTP ${fault.status}` : 'exception';
  const where = Object.entries(rule.target)
    .map(([kind, value]) => `${kind} ${String(value)}`)
    .join(', ');
  return `${what} into ${where} at rate ${rule.rate}`;
}
