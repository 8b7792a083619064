import type { CanActivate, ModuleMetadata, Type } from '@nestjs/common';
import { ResilienceConfigError } from '../core/errors.js';

/**
 * Options of `ResilienceConsoleModule.register()`.
 * @publicApi
 */
export interface ResilienceConsoleOptions {
  /** Path of the page; its JSON endpoints and assets live under it. @default 'resilience' */
  readonly path?: string;
  /**
   * Protects every route of the console (page, JSON, live stream, actions): a guard class (resolved
   * by Nest, with `imports` providing its dependencies) or instance. It runs like any route guard;
   * the request user it leaves (`request.user`) names who did each action. Required unless
   * `allowUnauthenticated: true`.
   */
  readonly guard?: Type<CanActivate> | CanActivate;
  /**
   * Serves the console without a guard. Anyone who reaches the port can then isolate breakers and
   * inject faults: for a laptop, never for a shared environment. @default false
   */
  readonly allowUnauthenticated?: boolean;
  /** Modules the guard's dependencies come from (a JWT module, a session store). @default [] */
  readonly imports?: ModuleMetadata['imports'];
  /**
   * Who did an action, from the request the guard let through.
   * @default the request user's `username`, `name`, `email`, `id` or `sub` (a string `request.user` as it is), else `'anonymous'`
   */
  readonly actor?: (request: unknown) => string | undefined;
  /** Only show: isolate, reset and chaos switches answer 403. @default false */
  readonly readOnly?: boolean;
  /** Most events kept for the page (a ring buffer: the oldest go first). @default 200 */
  readonly maxEvents?: number;
  /** Most actions kept in the page's action list (every action is also logged). @default 100 */
  readonly maxActions?: number;
  /** Samples of each breaker's sparkline. @default 60 */
  readonly historySamples?: number;
  /** Time between two samples, and between two pushes to the live page, in ms. @default 1000 */
  readonly sampleInterval?: number;
  /** Most live pages (Server-Sent Events streams) at once; more are answered 503. @default 20 */
  readonly maxStreams?: number;
  /** Most shared breakers and budgets whose fleet state is read from the backend per push. @default 100 */
  readonly maxFleetReads?: number;
}

/** {@link ResilienceConsoleOptions} with every default filled in. */
export interface ResolvedConsoleOptions {
  readonly path: string;
  readonly guard: Type<CanActivate> | CanActivate | undefined;
  readonly imports: NonNullable<ModuleMetadata['imports']>;
  readonly actor: ((request: unknown) => string | undefined) | undefined;
  readonly readOnly: boolean;
  readonly maxEvents: number;
  readonly maxActions: number;
  readonly historySamples: number;
  readonly sampleInterval: number;
  readonly maxStreams: number;
  readonly maxFleetReads: number;
}

/** Injection token of the {@link ResolvedConsoleOptions}. @internal */
export const RESILIENCE_CONSOLE_OPTIONS = Symbol('RESILIENCE_CONSOLE_OPTIONS');

const PATH = /^[A-Za-z0-9._~-]+(?:\/[A-Za-z0-9._~-]+)*$/;

/**
 * Checks the options and fills in the defaults.
 * @throws ResilienceConfigError naming the fix (no guard, a bad path or limit).
 * @internal
 */
export function resolveConsoleOptions(options: ResilienceConsoleOptions = {}): ResolvedConsoleOptions {
  if (options.guard === undefined && options.allowUnauthenticated !== true) {
    throw new ResilienceConfigError(
      'ResilienceConsoleModule.register() was given no guard: the console can isolate breakers and inject faults. ' +
        'Pass { guard: YourAdminGuard } (a CanActivate that lets only operators through), or { allowUnauthenticated: true } for a console on your own machine.',
    );
  }
  if (options.guard !== undefined && typeof options.guard !== 'function' && typeof (options.guard as CanActivate).canActivate !== 'function') {
    throw new ResilienceConfigError('ResilienceConsoleModule.register() was given a guard that is neither a guard class nor an object with canActivate(). Pass a CanActivate.');
  }
  const path = (options.path ?? 'resilience').replace(/^\/+|\/+$/g, '');
  if (!PATH.test(path)) {
    throw new ResilienceConfigError(`ResilienceConsoleModule.register() was given path ${JSON.stringify(options.path)}. Give a URL path such as 'resilience' or 'ops/resilience' (letters, digits, '.', '_', '~', '-' and '/').`);
  }
  return {
    path,
    guard: options.guard,
    imports: options.imports ?? [],
    actor: options.actor,
    readOnly: options.readOnly ?? false,
    maxEvents: limit('maxEvents', options.maxEvents, 200, 1, 10_000),
    maxActions: limit('maxActions', options.maxActions, 100, 1, 10_000),
    historySamples: limit('historySamples', options.historySamples, 60, 2, 3_600),
    sampleInterval: limit('sampleInterval', options.sampleInterval, 1_000, 50, 60_000),
    maxStreams: limit('maxStreams', options.maxStreams, 20, 1, 1_000),
    maxFleetReads: limit('maxFleetReads', options.maxFleetReads, 100, 0, 10_000),
  };
}

function limit(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ResilienceConfigError(`ResilienceConsoleModule.register() was given ${name}: ${JSON.stringify(value)}. Give a whole number from ${min} to ${max}.`);
  }
  return value;
}
