// What `npm start` runs (main.ts adds the signals and the start-up log): the sample app, its model
// service unless MODEL_SERVICE_URL names one, and the Redis and NATS servers of its report jobs and
// "report ready" consumer (REDIS_URL / NATS_URL, else throwaway ones, else the in-process path).
import type { INestApplication } from '@nestjs/common';
import type { AddressInfo, Server } from 'node:net';
import { startSampleBrokers, type SampleBrokers } from './brokers/sample-brokers.js';
import { createSampleApp, type SamplePlatform } from './create-sample-app.js';
import { modelServiceOptionsFromEnv, startModelService } from './model-service/model-service.js';
import { sampleAppOptionsFromEnv, type SampleAppOptions } from './sample-app.options.js';

/** Options of {@link startSample}. */
export interface StartSampleOptions {
  /** Where the settings come from. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Replaces options read from `env` (tests shorten budgets, silence logs). */
  overrides?: Partial<SampleAppOptions>;
  /** The one start-up line that says which server binary is missing and what the sample does instead. */
  log: (line: string) => void;
  /** The model service's lines (when the sample starts it). @default log */
  modelLog?: (line: string) => void;
}

/** A running sample. */
export interface RunningSample {
  readonly app: INestApplication;
  /** `http://<host>:<port>` it listens on. */
  readonly url: string;
  readonly options: SampleAppOptions;
  readonly platform: SamplePlatform;
  /** The servers it uses (and started). */
  readonly brokers: SampleBrokers;
  /** Whether it started the model service itself (MODEL_SERVICE_URL unset). */
  readonly modelStarted: boolean;
  /** Closes the app (its jobs, consumer and database), then the servers it started. Safe to call twice. */
  close(): Promise<void>;
}

/** Longest wait for the app to close before the servers are stopped anyway (a hung connection). */
const CLOSE_TIMEOUT_MS = 10_000;

/**
 * Starts the sample from `env` (PORT, HOST, PLATFORM, MODEL_SERVICE_URL, REDIS_URL, NATS_URL, and
 * what {@link sampleAppOptionsFromEnv} reads). Whatever it started is stopped again if a later
 * step fails, and by `close()`.
 */
export async function startSample({ env = process.env, overrides = {}, log, modelLog = log }: StartSampleOptions): Promise<RunningSample> {
  const options: SampleAppOptions = { ...sampleAppOptionsFromEnv(env), ...overrides };
  const modelOptions = modelServiceOptionsFromEnv(env);
  const modelStarted = !env.MODEL_SERVICE_URL && overrides.modelServiceUrl === undefined;
  if (modelStarted) options.modelServiceUrl = `http://127.0.0.1:${modelOptions.port}`;
  // Outside production, POST /reports honours X-Demo-Hold-Ms so `npm run demo` can show a 409.
  options.demoHold ??= env.NODE_ENV !== 'production';
  const platform: SamplePlatform = env.PLATFORM === 'fastify' ? 'fastify' : 'express';
  const host = env.HOST || '127.0.0.1';

  // the servers and the model service start side by side: they are independent
  const [brokers, model] = await Promise.allSettled([
    startSampleBrokers({ env, log }),
    modelStarted ? startModelService({ ...modelOptions, host: '127.0.0.1', log: modelLog }) : Promise.resolve(undefined),
  ]);
  const stopStarted = async (app?: INestApplication) => {
    if (app) await withTimeout(app.close(), CLOSE_TIMEOUT_MS);
    if (model.status === 'fulfilled') await model.value?.close();
    if (brokers.status === 'fulfilled') await brokers.value.stop();
  };
  if (brokers.status === 'rejected' || model.status === 'rejected') {
    await stopStarted();
    throw brokers.status === 'rejected' ? brokers.reason : (model as PromiseRejectedResult).reason;
  }
  options.queueRedisUrl ??= brokers.value.queueRedisUrl;
  options.natsUrl ??= brokers.value.natsUrl;

  let app: INestApplication | undefined;
  try {
    app = await createSampleApp(options, { platform, shutdownHooks: false });
    await app.listen(env.PORT ? Number(env.PORT) : 3000, host);
    await app.startAllMicroservices();
  } catch (error) {
    await stopStarted(app).catch(() => undefined);
    throw error;
  }
  const started = app;
  let closing: Promise<void> | undefined;
  return {
    app: started,
    url: `http://${host}:${((started.getHttpServer() as Server).address() as AddressInfo).port}`,
    options,
    platform,
    brokers: brokers.value,
    modelStarted,
    close: () => (closing ??= stopStarted(started)),
  };
}

/** Resolves when `promise` settles or after `ms`, whichever comes first (never rejects). */
async function withTimeout(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise.catch(() => undefined), new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

