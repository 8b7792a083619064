/**
 * `nest-resilience/http`: resilient outgoing HTTP clients on undici (`ResilientHttpModule`,
 * `HttpClient`, `@InjectHttpClient()`). Imports undici; the root entry point does not, so apps that
 * make no outgoing calls through it never load it.
 * @module nest-resilience/http
 */
export { HttpClient, type HttpClientDefaults, type HttpClientDependencies } from './http-client.js';
export type {
  DataOf,
  HedgingOptions,
  HttpCallOptions,
  HttpCallRecord,
  HttpClientOptions,
  HttpMethod,
  HttpClientPingOptions,
  HttpRequestOptions,
  HttpResponse,
  PropagationOptions,
  QueryValue,
  RateLimitOptions,
} from './http-client.options.js';
export {
  HttpClients,
  ResilientHttpModule,
  type HttpCallLogLevel,
  type HttpCallLogOptions,
  type HttpClientAsyncRegistration,
  type ResilientHttpModuleAsyncOptions,
  type ResilientHttpModuleOptions,
} from './resilient-http.module.js';
export { getHttpClientToken, InjectHttpClient } from './inject-http-client.decorator.js';
export { HTTP_CLIENT_TELEMETRY_NAMES, isUndiciInstrumented } from './http-client.telemetry.js';
// the UpstreamError family lives in the core (the error mapper and the classifiers know it)
export * from '../core/upstream-http.error.js';
