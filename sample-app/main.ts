// `npm start`: the sample app on PORT (3000) and, unless MODEL_SERVICE_URL points at one that is
// already running, the model service on MODEL_PORT (3001), both on loopback; report jobs on REDIS_URL
// and "report ready" events over NATS_URL, or on throwaway redis-server and nats-server it starts
// and stops itself, or in process when those are not installed (see start-sample.ts).
import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { describeDatabase } from './database/database.options.js';
import { CONSOLE_PATH, DEFAULT_CONSOLE_LOGIN } from './sample-app.options.js';
import { startSample, type RunningSample } from './start-sample.js';

const logger = new Logger('Bootstrap');
// Lines logged before the app exists wait for its pino logger, so that every line is JSON.
Logger.attachBuffer();
const starting = startSample({ log: (line) => new Logger('SampleBrokers').warn(line), modelLog: (line) => new Logger('ModelService').log(line) });

// Ctrl-C or a SIGTERM stops the app first (its jobs and consumer), then the servers it started,
// so no redis-server or nats-server outlives it; a signal during start-up waits for it to finish.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void starting
      .then((sample) => sample.close(), () => undefined)
      .finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  });
}

starting.then(announce, (error: unknown) => {
  Logger.flush();
  console.error(`The sample app could not start: ${error instanceof Error ? error.message : String(error)}`);
  if (error instanceof Error && error.stack) console.error(error.stack);
  process.exit(1);
});

function announce({ url: base, options, platform, brokers, modelStarted }: RunningSample): void {
  logger.log(
    `Sample app on ${base} (${platform}, ${describeDatabase(options)}; ${brokers.description}); model service ${modelStarted ? 'started' : 'expected'} on ${options.modelServiceUrl}. ` +
      `Try: curl -i -X POST ${base}/reports -H 'X-Account-Id: acme' -H 'Idempotency-Key: first-report' ` +
      `-H 'Content-Type: application/json' -d '{"topic":"tides"}' — or run \`npm run demo\` in another terminal. ` +
      `Health: ${base}/health, metrics: ${base}/metrics, API docs: ${base}/docs.`,
  );
  const login = options.console ?? DEFAULT_CONSOLE_LOGIN;
  if (login === false) logger.log('No resilience console: NODE_ENV=production and CONSOLE_PASSWORD is not set.');
  else logger.log(`Resilience console: ${base}/${CONSOLE_PATH} — DEMO login "${login.username}" / "${login.password === DEFAULT_CONSOLE_LOGIN.password ? login.password : '(CONSOLE_PASSWORD)'}" (set CONSOLE_USER / CONSOLE_PASSWORD; a real service uses its own operator guard).`);
}
