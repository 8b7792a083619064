// `nest-resilience/console`: the opt-in resilience console (page, JSON endpoints, live stream,
// actions). Its page's files (assets/) ship in the package next to the compiled module.
export { ResilienceConsoleModule } from './resilience-console.module.js';
export type { ResilienceConsoleOptions } from './resilience-console.options.js';
export {
  ResilienceConsole,
  type ConsoleAction,
  type ConsoleBreaker,
  type ConsoleBudget,
  type ConsoleChaosRule,
  type ConsoleEvent,
  type ConsoleState,
} from './resilience-console.service.js';
export type { HttpClientOriginState } from '../http-client/http-client-state.js';
