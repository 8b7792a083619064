// Runtime chaos: rules that inject faults into the pipelines of an application on purpose, so a
// team can watch its fallbacks, alerts and dashboards work. (The library's own chaos suite,
// `npm run chaos`, is something else: it tests the library with real outages.)
import type { Clock } from './clock.js';
import { ResilienceConfigError } from './errors.js';
import type { ResilienceEventSink } from './events.js';
import { InjectedFaultError } from './injected-fault.js';
import { seededRandom, systemRandom, type Random } from './random.js';

/**
 * An exception thrown in place of the work: `error` (an error of yours, or a function returning one
 * per injection), by default an {@link InjectedFaultError}, which is transient (retried).
 * @publicApi
 */
export interface ChaosExceptionFault {
  /** Marks this fault as a thrown exception. */
  readonly kind: 'exception';
  /** The error to throw, or a function that returns it (called once per injection). @default a new InjectedFaultError */
  readonly error?: Error | ((site: ChaosSite) => unknown);
}

/**
 * A delay before the work starts, within the attempt (its timeout and the caller's abort end it).
 * @publicApi
 */
export interface ChaosLatencyFault {
  /** Marks this fault as an added delay. */
  readonly kind: 'latency';
  /** The delay, in ms. */
  readonly ms: number;
}

/**
 * A dependency's failing HTTP answer in place of the work: an `HttpClient` handles it as if the
 * origin had answered (a 429/503 `Retry-After` pauses the origin), a route or method fails with the
 * `UpstreamHttpError` the answer makes (retried when 408/429/5xx, `Retry-After` honoured).
 * @publicApi
 */
export interface ChaosHttpFault {
  /** Marks this fault as a failing HTTP answer. */
  readonly kind: 'http';
  /** The status, 400 to 599. */
  readonly status: number;
  /** Response headers (`{ 'retry-after': '2' }`). @default {} */
  readonly headers?: Readonly<Record<string, string>>;
  /** Response body (a string or a JSON value). */
  readonly body?: unknown;
}

/**
 * What a chaos rule injects.
 * @publicApi
 */
export type ChaosFault = ChaosExceptionFault | ChaosLatencyFault | ChaosHttpFault;

/**
 * Where a chaos rule injects: every field given must match the pipeline (give at least one).
 * @example { route: 'GET /preview' }
 * @example { httpClient: 'model' }
 * @publicApi
 */
export interface ChaosTarget {
  /** A policy key: a named policy, `Class.method`, or `http:<client>@<origin>`. */
  readonly policy?: string;
  /**
   * A decorated route, `METHOD /path` as the platform matched it (`GET /reports/:id`: the `route` of
   * the logs, global prefix included), or `/path` for every method.
   */
  readonly route?: string;
  /** A decorated route handler or provider method, `Class.method`. */
  readonly method?: string;
  /** The calls of an `HttpClient` of `nest-resilience/http`, by client name. */
  readonly httpClient?: string;
  /** With `httpClient`: one origin of the client (`https://api.example.com`). */
  readonly origin?: string;
}

/**
 * A chaos rule as given to `chaos: { rules }`, `ResilienceService.chaos().inject()` or the console.
 * @publicApi
 */
export interface ChaosRuleInit {
  /** Stable id (letters, digits, `.`, `_`, `-`); a rule with the id of an existing one replaces it. @default `chaos-<n>` */
  readonly id?: string;
  /** Which pipelines it applies to. */
  readonly target: ChaosTarget;
  /** What it injects. */
  readonly fault: ChaosFault;
  /** Share of attempts it injects into, 0 to 1 (each attempt draws from the chaos random). */
  readonly rate: number;
  /** Whether it injects now; a rule switched off stays listed. @default true */
  readonly enabled?: boolean;
}

/**
 * A chaos rule as the application holds it.
 * @publicApi
 */
export interface ChaosRule {
  /** Stable id, given or generated (`chaos-<n>`): the handle to switch the rule off or remove it. */
  readonly id: string;
  /** Which pipelines it applies to. */
  readonly target: ChaosTarget;
  /** What it injects. */
  readonly fault: ChaosFault;
  /** Share of attempts it injects into, 0 to 1. */
  readonly rate: number;
  /** Whether it injects now (a rule switched off stays listed). */
  readonly enabled: boolean;
  /** Faults it injected since it was switched on. */
  readonly injected: number;
  /** When it was last set (wall clock ms). */
  readonly updatedAt: number;
  /** Who set it (the console's request user), when known. */
  readonly updatedBy?: string;
}

/**
 * What one pipeline is, for matching chaos rules: its policy key and, when it has them, the route,
 * the class method and the HTTP client it runs for.
 * @publicApi
 */
export interface ChaosSite {
  /** The pipeline's policy key. */
  readonly policy: string;
  /** `METHOD /path` of a decorated route, when fixed (pipelines of route handlers read it per call: {@link PipelineChaos.routeOf}). */
  readonly route?: string;
  /** `Class.method` of a decorated route handler or provider method. */
  readonly method?: string;
  /** Name of the `HttpClient`. */
  readonly httpClient?: string;
  /** The origin an `HttpClient` pipeline calls. */
  readonly origin?: string;
}

/**
 * Options of {@link ChaosControl}.
 * @publicApi
 */
export interface ChaosControlOptions {
  /** Draws whether each rule fires: give `seededRandom(seed)` for a reproducible run. @default systemRandom */
  readonly random?: Random;
  /** Clock of the latency timers. */
  readonly clock: Clock;
  /** Where `fault_injected` events go. */
  readonly events: ResilienceEventSink;
  /** Most rules held at once. @default 100 */
  readonly maxRules?: number;
  /** Wall clock for `updatedAt`. @default Date.now */
  readonly now?: () => number;
}

/** Default of {@link ChaosControlOptions.maxRules}. @publicApi */
export const DEFAULT_MAX_CHAOS_RULES = 100;

/**
 * The `chaos` option of `ResilienceModule.forRoot()`: runtime chaos rules, off unless `enabled`.
 * @example
 * ResilienceModule.forRoot({ chaos: { enabled: process.env.CHAOS === 'on', seed: 42 } })
 * @publicApi
 */
export interface ChaosOptions {
  /** Builds the injection stage into every pipeline, so rules can be switched on at runtime. @default false */
  readonly enabled?: boolean;
  /** Allows `enabled` with `NODE_ENV=production` (refused at start-up otherwise). @default false */
  readonly allowInProduction?: boolean;
  /** Rules switched on at start-up (checked then: a rule that cannot work stops the application). @default [] */
  readonly rules?: readonly ChaosRuleInit[];
  /** Seed of the chaos random: the same injections, in the same order, on every run. @default unseeded */
  readonly seed?: number;
  /** Source of the chaos draws (wins over `seed`). @default systemRandom, or seededRandom(seed) */
  readonly random?: Random;
  /** Most rules held at once. @default 100 */
  readonly maxRules?: number;
}

/** {@link ChaosOptions} of an application where chaos is enabled, checked. @publicApi */
export interface ResolvedChaosOptions {
  /** Source of the chaos draws: `random` if given, else seeded from `seed`, else the system random. */
  readonly random: Random;
  /** Rules switched on at start-up, already checked. */
  readonly rules: readonly ChaosRuleInit[];
  /** Most rules held at once, checked to be from 1 to 10000. */
  readonly maxRules: number;
}

/**
 * Checks the `chaos` option: `undefined` unless chaos is enabled.
 * @param environment `NODE_ENV` (enabling chaos in production needs `allowInProduction`).
 * @throws ResilienceConfigError naming the fix (production without the flag, rules that cannot work, rules while chaos is off).
 * @publicApi
 */
export function resolveChaosOptions(options: ChaosOptions | undefined, environment: string | undefined): ResolvedChaosOptions | undefined {
  if (options === undefined) return undefined;
  const { enabled = false, allowInProduction = false, rules = [], seed, random, maxRules = DEFAULT_MAX_CHAOS_RULES } = options;
  if (typeof enabled !== 'boolean' || typeof allowInProduction !== 'boolean') {
    throw new ResilienceConfigError('ResilienceModule option chaos.enabled and chaos.allowInProduction take true or false.');
  }
  if (!Array.isArray(rules)) throw new ResilienceConfigError('ResilienceModule option chaos.rules must be an array of rules { target, fault, rate }.');
  if (!enabled) {
    if (rules.length > 0) {
      throw new ResilienceConfigError('ResilienceModule option chaos.rules is set but chaos.enabled is not true, so the rules would never run. Add chaos: { enabled: true } or remove the rules.');
    }
    return undefined;
  }
  if (environment === 'production' && !allowInProduction) {
    throw new ResilienceConfigError(
      'Runtime chaos is enabled (chaos.enabled: true) with NODE_ENV=production: its rules inject failures into real traffic. ' +
        'Set chaos.allowInProduction: true if that is what you want, or enable chaos only outside production.',
    );
  }
  if (!Number.isInteger(maxRules) || maxRules < 1 || maxRules > 10_000) {
    throw new ResilienceConfigError(`ResilienceModule option chaos.maxRules is ${String(maxRules)}. Give a whole number from 1 to 10000 (default ${DEFAULT_MAX_CHAOS_RULES}).`);
  }
  if (seed !== undefined && !Number.isFinite(seed)) throw new ResilienceConfigError(`ResilienceModule option chaos.seed is ${String(seed)}. Give a number.`);
  if (random !== undefined && typeof random?.next !== 'function') throw new ResilienceConfigError('ResilienceModule option chaos.random must be a Random ({ next(): number }).');
  if (rules.length > maxRules) throw new ResilienceConfigError(`ResilienceModule option chaos.rules has ${rules.length} rules; at most chaos.maxRules (${maxRules}) are held.`);
  const ids = new Set<string>();
  rules.forEach((rule, index) => {
    const { id } = validateChaosRule(rule, rule?.id ?? `chaos-${index + 1}`);
    if (rule.id !== undefined && ids.has(id)) throw new ResilienceConfigError(`ResilienceModule option chaos.rules has two rules with the id "${id}". Give each rule its own id.`);
    ids.add(id);
  });
  return { random: random ?? (seed === undefined ? systemRandom : seededRandom(seed)), rules, maxRules };
}

const RULE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const MAX_TARGET_LENGTH = 512;
const MAX_HEADERS = 20;
/** Longest injected latency: an hour (an attempt timeout ends it much sooner in practice). */
const MAX_LATENCY_MS = 3_600_000;
/** Pipelines remembered as possible targets (the console's suggestions); the oldest go first. */
const MAX_KNOWN_SITES = 1_000;

/** A rule with its counter, as the control keeps it. */
interface HeldRule {
  readonly rule: Omit<ChaosRule, 'injected'>;
  injected: number;
}

/**
 * Holds the runtime chaos rules of an application and decides, per attempt, which fire. Created by
 * `ResilienceModule` when `chaos: { enabled: true }`; switched at runtime through
 * `ResilienceService.chaos()` and the resilience console. Pipelines that match no rule pay one
 * comparison per attempt; an application without chaos builds no injection stage at all.
 * @example
 * resilience.chaos().inject({ id: 'slow-model', target: { httpClient: 'model' }, fault: { kind: 'latency', ms: 1500 }, rate: 1 });
 * @publicApi
 */
export class ChaosControl {
  private readonly held = new Map<string, HeldRule>();
  private readonly knownSites = new Map<string, ChaosSite>();
  private random: Random;
  private readonly maxRules: number;
  private readonly now: () => number;
  private nextId = 1;
  /** Bumped by every change: injection stages re-match their rules when it moved. @internal */
  version = 0;

  constructor(private readonly options: ChaosControlOptions) {
    this.random = options.random ?? systemRandom;
    this.maxRules = options.maxRules ?? DEFAULT_MAX_CHAOS_RULES;
    this.now = options.now ?? Date.now;
  }

  /** The control of an application with `chaos` resolved, its start-up rules switched on (by `'options'`). */
  static fromOptions(options: ResolvedChaosOptions, environment: Pick<ChaosControlOptions, 'clock' | 'events'>): ChaosControl {
    const control = new ChaosControl({ ...environment, random: options.random, maxRules: options.maxRules });
    for (const rule of options.rules) control.inject(rule, 'options');
    return control;
  }

  /**
   * Switches `init` on (or off with `enabled: false`), replacing the rule with the same id.
   * @param by who set it, for the console's list and the audit log.
   * @throws ResilienceConfigError when the rule is invalid or `maxRules` rules are held already.
   */
  inject(init: ChaosRuleInit, by?: string): ChaosRule {
    const rule = validateChaosRule(init, init.id ?? this.freeId());
    const existing = this.held.get(rule.id);
    if (existing === undefined && this.held.size >= this.maxRules) {
      throw new ResilienceConfigError(`At most ${this.maxRules} chaos rules are held at once. Remove one first (ResilienceService.chaos().remove(id) or the console).`);
    }
    const stored: HeldRule = {
      rule: { ...rule, updatedAt: this.now(), ...(by === undefined ? {} : { updatedBy: by }) },
      // a rule switched on again counts afresh
      injected: existing !== undefined && existing.rule.enabled && rule.enabled ? existing.injected : 0,
    };
    this.held.set(rule.id, stored);
    this.version++;
    return view(stored);
  }

  /**
   * Switches the rule `id` on or off, keeping it listed.
   * @throws ResilienceConfigError when no rule has this id.
   */
  switch(id: string, enabled: boolean, by?: string): ChaosRule {
    const existing = this.held.get(id);
    if (existing === undefined) throw unknownRule(id, this.held);
    return this.inject({ ...existing.rule, enabled }, by);
  }

  /** Removes the rule `id`; whether there was one. */
  remove(id: string): boolean {
    const removed = this.held.delete(id);
    if (removed) this.version++;
    return removed;
  }

  /** Removes every rule; how many there were. */
  clear(): number {
    const count = this.held.size;
    this.held.clear();
    if (count > 0) this.version++;
    return count;
  }

  /** Every rule, switched on or off, in the order they were first set. */
  rules(): ChaosRule[] {
    return [...this.held.values()].map(view);
  }

  /** The rule `id`, or `undefined`. */
  get(id: string): ChaosRule | undefined {
    const held = this.held.get(id);
    return held === undefined ? undefined : view(held);
  }

  /** Whether any rule is switched on. */
  get active(): boolean {
    for (const { rule } of this.held.values()) if (rule.enabled) return true;
    return false;
  }

  /** Draws from `random` from now on (a seeded one makes a run reproducible). */
  useRandom(random: Random): void {
    this.random = random;
  }

  /**
   * Pipelines built so far that rules could target (at most 1000, the most recently built), for
   * suggestions: their policy keys, routes, methods and HTTP clients.
   */
  sites(): ChaosSite[] {
    return [...this.knownSites.values()];
  }

  /** Remembers a pipeline's site (its injection stage was built). @internal */
  noteSite(site: ChaosSite): void {
    const key = [site.policy, site.route, site.method, site.httpClient, site.origin].join('\u0000');
    this.knownSites.delete(key);
    this.knownSites.set(key, site);
    if (this.knownSites.size > MAX_KNOWN_SITES) this.knownSites.delete(this.knownSites.keys().next().value!);
  }

  /**
   * The switched-on rules that apply to `site`, in order. With `routeKnownPerCall`, rules naming a
   * route are kept when everything else matches: the route is only known per call. @internal
   */
  matching(site: ChaosSite, routeKnownPerCall = false): HeldRuleRef[] {
    const matched: HeldRuleRef[] = [];
    for (const held of this.held.values()) {
      if (held.rule.enabled && matches(held.rule.target, site, routeKnownPerCall)) matched.push(held);
    }
    return matched;
  }

  /** One draw: whether a rule of `rate` fires for this attempt. @internal */
  fires(rate: number): boolean {
    // rate 1 and 0 never draw: a rule that always (or never) fires leaves the sequence alone
    if (rate >= 1) return true;
    if (rate <= 0) return false;
    return this.random.next() < rate;
  }

  /** Clock and event sink of the injections. @internal */
  get environment(): Pick<ChaosControlOptions, 'clock' | 'events'> {
    return this.options;
  }

  private freeId(): string {
    let id: string;
    do id = `chaos-${this.nextId++}`;
    while (this.held.has(id));
    return id;
  }
}

/** A held rule, as injection stages read it. @internal */
export type HeldRuleRef = HeldRule;

function view(held: HeldRule): ChaosRule {
  return { ...held.rule, injected: held.injected };
}

function unknownRule(id: string, held: ReadonlyMap<string, HeldRule>): ResilienceConfigError {
  const known = [...held.keys()];
  return new ResilienceConfigError(`No chaos rule has the id "${id}". ${known.length === 0 ? 'There is no rule.' : `Known ids: ${known.map((k) => `"${k}"`).join(', ')}.`}`);
}

/** Whether every field of `target` matches `site` (its route left for later with `routeLater`). */
function matches(target: ChaosTarget, site: ChaosSite, routeLater = false): boolean {
  if (target.policy !== undefined && target.policy !== site.policy) return false;
  if (target.method !== undefined && target.method !== site.method) return false;
  if (target.httpClient !== undefined && target.httpClient !== site.httpClient) return false;
  if (target.origin !== undefined && target.origin !== site.origin) return false;
  if (target.route !== undefined && !routeLater && !routeMatches(target.route, site.route)) return false;
  return true;
}

/** Whether a rule's `route` names `route` (`METHOD /path`); a rule's `/path` names it under every method. */
/** @internal */
export function routeMatches(wanted: string, route: string | undefined): boolean {
  if (route === undefined) return false;
  return wanted.startsWith('/') ? route.slice(route.indexOf(' ') + 1) === wanted : route === wanted;
}

/**
 * Checks a rule and puts it in canonical form (route method upper-cased, origin normalised).
 * @throws ResilienceConfigError with a sentence naming the fix.
 * @publicApi
 */
export function validateChaosRule(init: ChaosRuleInit, id: string = init.id ?? 'chaos'): Omit<ChaosRule, 'injected' | 'updatedAt'> {
  const where = `The chaos rule "${String(id)}"`;
  if (typeof init !== 'object' || init === null) throw new ResilienceConfigError('A chaos rule must be an object { target, fault, rate }.');
  if (typeof id !== 'string' || !RULE_ID.test(id)) {
    throw new ResilienceConfigError(`The chaos rule id ${JSON.stringify(id)} is not valid. Use 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit.`);
  }
  const rate = init.rate;
  if (typeof rate !== 'number' || !Number.isFinite(rate) || rate < 0 || rate > 1) {
    throw new ResilienceConfigError(`${where} has rate ${JSON.stringify(rate)}. Give a number from 0 (never) to 1 (every attempt).`);
  }
  const enabled = init.enabled ?? true;
  if (typeof enabled !== 'boolean') throw new ResilienceConfigError(`${where} has enabled ${JSON.stringify(enabled)}. Give true or false.`);
  return { id, target: validateTarget(init.target, where), fault: validateFault(init.fault, where), rate, enabled };
}

function validateTarget(target: ChaosTarget | undefined, where: string): ChaosTarget {
  if (typeof target !== 'object' || target === null) {
    throw new ResilienceConfigError(`${where} has no target. Give one of { policy }, { route: 'GET /path' }, { method: 'Class.method' } or { httpClient }.`);
  }
  const fields = ['policy', 'route', 'method', 'httpClient', 'origin'] as const;
  const unknown = Object.keys(target).filter((name) => !(fields as readonly string[]).includes(name));
  if (unknown.length > 0) throw new ResilienceConfigError(`${where} has an unknown target field "${unknown[0]}". Use policy, route, method, httpClient or origin.`);
  const result: Record<string, string> = {};
  for (const field of fields) {
    const value = target[field];
    if (value === undefined) continue;
    if (typeof value !== 'string' || value.trim() === '' || value.length > MAX_TARGET_LENGTH) {
      throw new ResilienceConfigError(`${where} has target.${field} ${JSON.stringify(value)}. Give a non-empty name of at most ${MAX_TARGET_LENGTH} characters.`);
    }
    result[field] = value.trim();
  }
  if (Object.keys(result).length === 0) {
    throw new ResilienceConfigError(`${where} has an empty target, which would inject everywhere. Name a policy, route, method or httpClient.`);
  }
  if (result.origin !== undefined) {
    if (result.httpClient === undefined) throw new ResilienceConfigError(`${where} names an origin without an httpClient. Add httpClient: '<client name>'.`);
    try {
      result.origin = new URL(result.origin).origin;
    } catch {
      throw new ResilienceConfigError(`${where} has target.origin ${JSON.stringify(result.origin)}, which is not a URL. Give one such as "https://api.example.com".`);
    }
  }
  if (result.route !== undefined) {
    const match = /^(?:([A-Za-z]+)\s+)?(\/\S*)$/.exec(result.route);
    if (match === null) throw new ResilienceConfigError(`${where} has target.route ${JSON.stringify(result.route)}. Give "METHOD /path" as the route declares it ("GET /reports/:id"), or "/path" for every method.`);
    result.route = match[1] === undefined ? match[2]! : `${match[1].toUpperCase()} ${match[2]}`;
  }
  return result as ChaosTarget;
}

function validateFault(fault: ChaosFault | undefined, where: string): ChaosFault {
  const kinds = `{ kind: 'exception' }, { kind: 'latency', ms } or { kind: 'http', status, headers }`;
  if (typeof fault !== 'object' || fault === null) throw new ResilienceConfigError(`${where} has no fault. Give ${kinds}.`);
  switch (fault.kind) {
    case 'exception':
      if (fault.error !== undefined && !(fault.error instanceof Error) && typeof fault.error !== 'function') {
        throw new ResilienceConfigError(`${where} throws ${JSON.stringify(fault.error)}. Give an Error, a function returning one, or nothing (an InjectedFaultError).`);
      }
      return fault.error === undefined ? { kind: 'exception' } : { kind: 'exception', error: fault.error };
    case 'latency':
      if (typeof fault.ms !== 'number' || !Number.isFinite(fault.ms) || fault.ms < 0 || fault.ms > MAX_LATENCY_MS) {
        throw new ResilienceConfigError(`${where} has latency ms ${JSON.stringify(fault.ms)}. Give a delay from 0 to ${MAX_LATENCY_MS} ms.`);
      }
      return { kind: 'latency', ms: Math.round(fault.ms) };
    case 'http': {
      if (!Number.isInteger(fault.status) || fault.status < 400 || fault.status > 599) {
        throw new ResilienceConfigError(`${where} has HTTP status ${JSON.stringify(fault.status)}. Give a failing status from 400 to 599 (503 with { 'retry-after': '2' }, for instance).`);
      }
      const headers: Record<string, string> = {};
      const given = fault.headers ?? {};
      if (typeof given !== 'object' || given === null || Object.keys(given).length > MAX_HEADERS) {
        throw new ResilienceConfigError(`${where} has headers ${JSON.stringify(given)}. Give at most ${MAX_HEADERS} headers as { name: value }.`);
      }
      for (const [name, value] of Object.entries(given)) {
        if (!HEADER_NAME.test(name) || typeof value !== 'string' || /[\r\n]/.test(value)) {
          throw new ResilienceConfigError(`${where} has an invalid header ${JSON.stringify(name)}: ${JSON.stringify(value)}. Give header names as tokens and values as single-line strings.`);
        }
        headers[name.toLowerCase()] = value;
      }
      return { kind: 'http', status: fault.status, headers, ...(fault.body === undefined ? {} : { body: fault.body }) };
    }
    default:
      throw new ResilienceConfigError(`${where} has fault kind ${JSON.stringify((fault as { kind?: unknown }).kind)}. Give ${kinds}.`);
  }
}

/**
 * The chaos part of a pipeline spec: the rules' control and what the pipeline is.
 * @publicApi
 */
export interface PipelineChaos {
  /** The application's chaos rules, asked on every attempt whether one fires. */
  readonly control: ChaosControl;
  /** What this pipeline is (policy key, route, method, HTTP client), matched against the rules' targets. */
  readonly site: ChaosSite;
  /**
   * The route of the call being served (`METHOD /path` as the platform matched it, global prefix
   * included), read per call by pipelines of route handlers: rules naming a route apply to them.
   */
  readonly routeOf?: () => string | undefined;
  /**
   * The work answers an injected HTTP fault itself ({@link chaosAnswerOf}): an `HttpClient` runs it
   * through its handling of a real answer, so a 429/503 `Retry-After` pauses the origin.
   * @default false: the attempt fails with the `UpstreamHttpError` of the fault's status, headers and body
   * @internal
   */
  readonly answersInWork?: boolean;
}
