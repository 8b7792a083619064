// Runs the model service on its own: `node build/sample-app/model-service/main.js`
// (MODEL_PORT, MODEL_LATENCY_MS, MODEL_FAILURE_RATE, MODEL_SEED).
import { modelServiceOptionsFromEnv, startModelService } from './model-service.js';

const model = await startModelService(modelServiceOptionsFromEnv());
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void model.close().then(() => process.exit(0));
  });
}
