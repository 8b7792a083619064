export * from './resilience-events.js';
export * from './observability-options.interface.js';
export { DEFAULT_EVENT_LOG_LEVELS, RESILIENCE_LOG_CONTEXT, ResilienceLogger, redactKey } from './resilience-logger.js';
export {
  CIRCUIT_STATE_VALUES,
  ResilienceTelemetry,
  TELEMETRY_NAMES,
  withAttemptSpan,
  type CircuitStateSample,
  type CircuitStateSource,
} from './resilience-telemetry.js';
