import {
  Inject,
  Injectable,
  Logger,
  Module,
  Optional,
  type DynamicModule,
  type InjectionToken,
  type ModuleMetadata,
  type OnApplicationShutdown,
  type OnModuleInit,
  type OptionalFactoryDependency,
  type Provider,
} from '@nestjs/common';
import { ChaosControl } from '../core/fault-injection.js';
import type { PolicyEnvironment } from '../core/policy.js';
import { PolicyRegistry } from '../core/policy-registry.js';
import { ResilienceConfigError } from '../core/errors.js';
import type { UpstreamError } from '../core/upstream-http.error.js';
import type { ResolvedResilienceOptions } from '../interfaces/resilience-module-options.interface.js';
import { loadOpenTelemetryApi } from '../observability/resilience-telemetry.js';
import { RESILIENCE_POLICY_ENVIRONMENT, RESOLVED_RESILIENCE_OPTIONS } from '../resilience.constants.js';
import { HttpClient, type HttpClientDependencies } from './http-client.js';
import type { HttpCallRecord, HttpClientOptions } from './http-client.options.js';
import { getHttpClientToken } from './inject-http-client.decorator.js';

/**
 * Log level of the one event written per call, or `false` for none.
 * @publicApi
 */
export type HttpCallLogLevel = 'log' | 'debug' | 'verbose' | 'warn' | 'error' | false;

/**
 * Levels of the per-call log event (context `HttpClient`; one JSON line with nestjs-pino).
 * @publicApi
 */
export interface HttpCallLogOptions {
  /** Level of a successful call. @default 'log' */
  readonly success?: HttpCallLogLevel;
  /** Level of a failed call. @default 'warn' */
  readonly failure?: HttpCallLogLevel;
}

/**
 * Options of `ResilientHttpModule.register()`.
 * @publicApi
 */
export interface ResilientHttpModuleOptions {
  /** The clients, by name (`@InjectHttpClient(name)`). */
  readonly clients: Readonly<Record<string, HttpClientOptions>>;
  /** Make the clients injectable everywhere without importing the module again. @default false */
  readonly isGlobal?: boolean;
  /** The per-call log event, or `false` for none. @default { success: 'log', failure: 'warn' } */
  readonly logCalls?: HttpCallLogOptions | false;
}

/**
 * One client of `ResilientHttpModule.registerAsync()`: its options come from a factory with
 * injected dependencies.
 * @publicApi
 */
export interface HttpClientAsyncRegistration {
  /** Name of the client (`@InjectHttpClient(name)`). */
  readonly name: string;
  /** Modules exporting what `useFactory` injects. */
  readonly imports?: ModuleMetadata['imports'];
  /** Providers handed to `useFactory`. */
  readonly inject?: Array<InjectionToken | OptionalFactoryDependency>;
  /** Computes the client's options. */
  readonly useFactory: (...args: any[]) => HttpClientOptions | Promise<HttpClientOptions>;
}

/**
 * Options of `ResilientHttpModule.registerAsync()`.
 * @publicApi
 */
export interface ResilientHttpModuleAsyncOptions extends Omit<ResilientHttpModuleOptions, 'clients'> {
  /** The clients, each with its name and its options factory. */
  readonly clients: readonly HttpClientAsyncRegistration[];
}

const LOG_OPTIONS = Symbol('nest-resilience:http-client-log-options');

/**
 * Builds the clients of a `ResilientHttpModule` with the application's `ResilienceModule` (its
 * clock, randomness, event stream, policy registry, named policies and defaults; a client of an
 * application without it gets its own), and closes their connection pools at shutdown.
 * @publicApi
 */
@Injectable()
export class HttpClients implements OnModuleInit, OnApplicationShutdown {
  private readonly clients = new Map<string, HttpClient>();
  private readonly logger = new Logger('HttpClient');
  private readonly dependencies: HttpClientDependencies;

  constructor(
    @Optional() @Inject(RESOLVED_RESILIENCE_OPTIONS) options?: ResolvedResilienceOptions,
    @Optional() @Inject(RESILIENCE_POLICY_ENVIRONMENT) env?: PolicyEnvironment,
    @Optional() registry?: PolicyRegistry,
    @Optional() @Inject(LOG_OPTIONS) logCalls?: HttpCallLogOptions | false,
    @Optional() @Inject(ChaosControl) chaos?: ChaosControl | null,
  ) {
    const logging = logCalls === false || options?.logging?.enabled === false ? false : { success: 'log' as const, failure: 'warn' as const, ...logCalls };
    this.dependencies = {
      ...(env === undefined ? {} : { env }),
      ...(registry === undefined ? {} : { registry }),
      ...(chaos ? { chaos } : {}),
      ...(options === undefined
        ? {}
        : {
            policies: options.policies,
            defaults: { retry: options.retry, timeout: options.timeout, circuitBreaker: options.circuitBreaker },
            telemetry: options.telemetry,
          }),
      ...(logging === false ? {} : { onCall: (record: HttpCallRecord, error: UpstreamError | undefined) => this.log(logging, record, error) }),
    };
  }

  /**
   * Creates (once) the client `name`.
   * @throws ResilienceConfigError when a client of that name exists already or an option can never work.
   */
  create(name: string, options: HttpClientOptions): HttpClient {
    if (this.clients.has(name)) {
      throw new ResilienceConfigError(`The HTTP client "${name}" is registered twice. Give each client of ResilientHttpModule its own name.`);
    }
    const client = new HttpClient(name, options, this.dependencies);
    this.clients.set(name, client);
    return client;
  }

  /** The client `name` of this module, or `undefined`. */
  get(name: string): HttpClient | undefined {
    return this.clients.get(name);
  }

  /** Every client of this module. */
  list(): HttpClient[] {
    return [...this.clients.values()];
  }

  /** Waits for the optional `@opentelemetry/api` to load, so the first calls are traced too. */
  async onModuleInit(): Promise<void> {
    await loadOpenTelemetryApi();
  }

  /** Closes every client's connection pool. */
  async onApplicationShutdown(): Promise<void> {
    await Promise.all(this.list().map((client) => client.close()));
  }

  private log(levels: Required<HttpCallLogOptions>, record: HttpCallRecord, error: UpstreamError | undefined): void {
    const level = error === undefined ? levels.success : levels.failure;
    if (!level) return;
    const status = record.status === undefined ? '' : ` → ${record.status}`;
    const attempts = `${record.attempts} request${record.attempts === 1 ? '' : 's'}`;
    const outcome = error === undefined ? '' : ` failed (${record.outcome})`;
    this.logger[level]({
      msg: `${record.client}: ${record.method} ${record.route}${status}${outcome} in ${record.durationMs} ms (${attempts})`,
      event: 'http_call',
      ...record,
      ...(error === undefined ? {} : { errorType: error.name }),
    });
  }
}

/**
 * Named resilient HTTP clients, registered the Nest way and injected with `@InjectHttpClient(name)`.
 * Import `ResilienceModule.forRoot()` too: the clients then share its clock, event stream (logs,
 * OpenTelemetry), named policies and defaults, and their breakers show up in
 * `CircuitBreakerService` and the health indicators.
 * @example
 * @Module({
 *   imports: [
 *     ResilienceModule.forRoot(),
 *     ResilientHttpModule.register({ clients: { model: { baseUrl: 'http://model.internal', timeout: { total: 20_000, attempt: 8_000 } } } }),
 *   ],
 * })
 * export class AppModule {}
 * @publicApi
 */
@Module({})
export class ResilientHttpModule {
  /** Registers the clients of `options.clients`. */
  static register(options: ResilientHttpModuleOptions): DynamicModule {
    const names = Object.keys(options.clients ?? {});
    if (names.length === 0) {
      throw new ResilienceConfigError('ResilientHttpModule.register() was given no clients. Pass { clients: { name: { baseUrl } } }.');
    }
    const providers: Provider[] = names.map((name) => ({
      provide: getHttpClientToken(name),
      useFactory: (clients: HttpClients) => clients.create(name, options.clients[name]!),
      inject: [HttpClients],
    }));
    return this.module(providers, names, options);
  }

  /** Registers clients whose options come from factories (configuration, secrets). */
  static registerAsync(options: ResilientHttpModuleAsyncOptions): DynamicModule {
    if (!options.clients || options.clients.length === 0) {
      throw new ResilienceConfigError('ResilientHttpModule.registerAsync() was given no clients. Pass { clients: [{ name, useFactory }] }.');
    }
    const providers: Provider[] = options.clients.map((registration) => ({
      provide: getHttpClientToken(registration.name),
      useFactory: async (clients: HttpClients, ...args: unknown[]) => clients.create(registration.name, await registration.useFactory(...args)),
      inject: [HttpClients, ...(registration.inject ?? [])],
    }));
    const imports = options.clients.flatMap((registration) => registration.imports ?? []);
    return { ...this.module(providers, options.clients.map((c) => c.name), options), imports };
  }

  private static module(clientProviders: Provider[], names: string[], options: Omit<ResilientHttpModuleOptions, 'clients'>): DynamicModule {
    return {
      module: ResilientHttpModule,
      global: options.isGlobal ?? false,
      providers: [{ provide: LOG_OPTIONS, useValue: options.logCalls ?? {} }, HttpClients, ...clientProviders],
      exports: [HttpClients, ...names.map(getHttpClientToken)],
    };
  }
}
