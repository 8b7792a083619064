import type { DemoConsoleLogin } from './console/demo-console.guard.js';
import type { ReportReadyMessage } from './report-events/report-ready.js';
import type { Report } from './reports/report.entity.js';

/**
 * Everything that differs between `npm start`, the e2e tests and a deployment. `main.ts` reads it
 * from the environment ({@link sampleAppOptionsFromEnv}); tests build it by hand.
 */
export interface SampleAppOptions {
  /** `postgres://…` switches the app to PostgreSQL; otherwise SQLite is used. */
  databaseUrl?: string;
  /** SQLite file, created on first start (`:memory:` in tests). @default 'sample-app.sqlite' */
  sqliteFile?: string;
  /**
   * `redis://…` keeps the idempotency records in Redis (`RedisIdempotencyStore`, lease mode: the
   * report and the debit commit in their own transaction, then the response is stored); accounts
   * and reports stay in the database. Unset: the records live in the database, in the same
   * transaction as the report (transactional mode).
   */
  redisUrl?: string;
  /**
   * Redis of the BullMQ queue the reports are generated on (`main.ts`: REDIS_URL, else a throwaway
   * redis-server). Unset: reports are generated in process.
   */
  queueRedisUrl?: string;
  /**
   * NATS the "report ready" events go over, to the app's `@EventPattern` consumer (`main.ts`:
   * NATS_URL, else a throwaway nats-server). Unset: the events are recorded directly.
   */
  natsUrl?: string;
  /** Key prefix of the idempotency records in Redis. @default 'sample-app:idempotency:' */
  redisKeyPrefix?: string;
  /** Base URL of the model service. */
  modelServiceUrl: string;
  /** Deadlines and attempts of the background report generation. */
  generation?: {
    /** Total budget of one generation, retries included, in ms. @default 8000 */
    totalMs?: number;
    /** Budget of one model call, in ms. @default 2000 */
    attemptMs?: number;
    /** Model calls per generation, the first included. @default 4 */
    maxAttempts?: number;
  };
  /** The `model-service` circuit breaker. */
  breaker?: {
    /** Consecutive failed model calls that open the breaker. @default 3 */
    consecutiveFailures?: number;
    /** How long the breaker stays open before one probe is let through, in ms. @default 5000 */
    breakDurationMs?: number;
  };
  /** Accounts created on start when absent, with their credits. @default { acme: 1000, globex: 2 } */
  seedAccounts?: Record<string, number>;
  /** Timeout of the model-service ping in `/health`, in ms. @default 1000 */
  healthPingTimeoutMs?: number;
  /** pino level (`silent` in tests). @default process.env.LOG_LEVEL ?? 'info' */
  logLevel?: string;
  /**
   * Lets `POST /reports` honour an `X-Demo-Hold-Ms` header (at most 3000): the request holds its
   * transaction that long, so `npm run demo` can show a concurrent duplicate answered 409.
   * `main.ts` turns it on unless NODE_ENV=production. @default false
   */
  demoHold?: boolean;
  /**
   * The resilience console on `/resilience`, behind the DEMO-ONLY login of {@link DemoConsoleLogin}
   * (HTTP Basic), or `false` for none. `main.ts` reads CONSOLE_USER / CONSOLE_PASSWORD and, with
   * NODE_ENV=production, serves no console unless CONSOLE_PASSWORD is set.
   * @default { username: 'demo', password: 'demo' }
   */
  console?: DemoConsoleLogin | false;
  /**
   * Runtime chaos rules (`ResilienceModule.forRoot({ chaos })`), switched at runtime in the console
   * or by `npm run demo`. `main.ts` turns it off with NODE_ENV=production. @default true
   */
  chaos?: boolean;
  /** Seams for tests; never set in production. */
  hooks?: SampleAppHooks;
}

/** Test seams of the sample app. */
export interface SampleAppHooks {
  /**
   * Awaited inside the `POST /reports` transaction, after the report is written and the credit
   * debited, before the transaction commits. Tests hold a request here to make a concurrent
   * duplicate deterministic.
   */
  afterReportRecorded?: (report: Report) => Promise<void> | void;
  /** Awaited before the row of a "report ready" event is inserted: tests count the consumer's runs here. */
  reportReadyRecording?: (event: ReportReadyMessage) => Promise<void> | void;
}

/** Injection token of the {@link SampleAppOptions}. */
export const SAMPLE_APP_OPTIONS = Symbol('SAMPLE_APP_OPTIONS');

/** Default accounts: `acme` can afford many runs of the demo, `globex` runs out after two reports. */
export const DEFAULT_SEED_ACCOUNTS: Readonly<Record<string, number>> = { acme: 1000, globex: 2 };

/** Default base URL of the model service `npm start` runs. */
export const DEFAULT_MODEL_SERVICE_URL = 'http://127.0.0.1:3001';

/** The demo console's login when nothing is configured (DEMO ONLY). */
export const DEFAULT_CONSOLE_LOGIN: DemoConsoleLogin = { username: 'demo', password: 'demo' };

/** Path of the resilience console in the sample app. */
export const CONSOLE_PATH = 'resilience';

/**
 * Reads the options from DATABASE_URL, SQLITE_FILE, REDIS_URL, MODEL_SERVICE_URL, LOG_LEVEL and
 * CONSOLE_USER / CONSOLE_PASSWORD (with NODE_ENV=production there is no console without a password,
 * and no runtime chaos).
 */
export function sampleAppOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): SampleAppOptions {
  const password = env.CONSOLE_PASSWORD || undefined;
  return {
    databaseUrl: env.DATABASE_URL || undefined,
    sqliteFile: env.SQLITE_FILE || undefined,
    redisUrl: env.REDIS_URL || undefined,
    modelServiceUrl: env.MODEL_SERVICE_URL || DEFAULT_MODEL_SERVICE_URL,
    logLevel: env.LOG_LEVEL || undefined,
    chaos: env.NODE_ENV !== 'production',
    console:
      password === undefined && env.NODE_ENV === 'production'
        ? false
        : { username: env.CONSOLE_USER || DEFAULT_CONSOLE_LOGIN.username, password: password ?? DEFAULT_CONSOLE_LOGIN.password },
  };
}
