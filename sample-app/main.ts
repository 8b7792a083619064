// `npm start`: the sample app on PORT (3000) and, unless MODEL_SERVICE_URL points at one that is
// already running, the model service on MODEL_PORT (3001), both on loopback.
import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { createSampleApp, type SamplePlatform } from './create-sample-app.js';
import { describeDatabase } from './database/database.options.js';
import { modelServiceOptionsFromEnv, startModelService } from './model-service/model-service.js';
import { CONSOLE_PATH, DEFAULT_CONSOLE_LOGIN, sampleAppOptionsFromEnv } from './sample-app.options.js';

async function bootstrap(): Promise<void> {
  const options = sampleAppOptionsFromEnv();
  const modelOptions = modelServiceOptionsFromEnv();
  const runModel = !process.env.MODEL_SERVICE_URL;
  if (runModel) options.modelServiceUrl = `http://127.0.0.1:${modelOptions.port}`;
  // Outside production, POST /reports honours X-Demo-Hold-Ms so `npm run demo` can show a 409.
  options.demoHold = process.env.NODE_ENV !== 'production';

  const platform: SamplePlatform = process.env.PLATFORM === 'fastify' ? 'fastify' : 'express';
  const app = await createSampleApp(options, { platform });
  const logger = new Logger('Bootstrap');

  if (runModel) {
    const modelLogger = new Logger('ModelService');
    await startModelService({ ...modelOptions, host: '127.0.0.1', log: (line) => modelLogger.log(line) });
  }

  const port = Number(process.env.PORT || 3000);
  const host = process.env.HOST || '127.0.0.1';
  await app.listen(port, host);
  const base = `http://${host}:${port}`;
  logger.log(
    `Sample app on ${base} (${platform}, ${describeDatabase(options)}); model service ${runModel ? 'started' : 'expected'} on ${options.modelServiceUrl}. ` +
      `Try: curl -i -X POST ${base}/reports -H 'X-Account-Id: acme' -H 'Idempotency-Key: first-report' ` +
      `-H 'Content-Type: application/json' -d '{"topic":"tides"}' — or run \`npm run demo\` in another terminal. ` +
      `Health: ${base}/health, metrics: ${base}/metrics, API docs: ${base}/docs.`,
  );
  const login = options.console ?? DEFAULT_CONSOLE_LOGIN;
  if (login === false) logger.log('No resilience console: NODE_ENV=production and CONSOLE_PASSWORD is not set.');
  else logger.log(`Resilience console: ${base}/${CONSOLE_PATH} — DEMO login "${login.username}" / "${login.password === DEFAULT_CONSOLE_LOGIN.password ? login.password : '(CONSOLE_PASSWORD)'}" (set CONSOLE_USER / CONSOLE_PASSWORD; a real service uses its own operator guard).`);
}

bootstrap().catch((error: unknown) => {
  console.error(`The sample app could not start: ${error instanceof Error ? error.message : String(error)}`);
  if (error instanceof Error && error.stack) console.error(error.stack);
  process.exit(1);
});
