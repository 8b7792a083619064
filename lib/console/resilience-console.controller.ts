import {
  Body,
  Catch,
  Controller,
  Delete,
  Get,
  Headers,
  HttpCode,
  Inject,
  Param,
  Post,
  Query,
  Req,
  Res,
  UseFilters,
  UseGuards,
  type ArgumentsHost,
  type CanActivate,
  type ExceptionFilter,
  type Type,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ResilienceConfigError } from '../core/errors.js';
import type { ChaosRuleInit } from '../core/fault-injection.js';
import { applyProblemHeaders, ProblemDetailsException } from '../http/problem-details.js';
import { consoleAsset, consolePage } from './console-assets.js';
import {
  ChaosDisabledError,
  ConsoleReadOnlyError,
  ResilienceConsole,
  UnknownConsoleTargetError,
  type ConsoleAction,
  type ConsoleChaosRule,
  type ConsoleEvent,
  type ConsoleState,
} from './resilience-console.service.js';
import { RESILIENCE_CONSOLE_OPTIONS, type ResolvedConsoleOptions } from './resilience-console.options.js';

/** The page loads its own files only, runs no inline code and cannot be framed. */
const PAGE_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'self'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};
const API_HEADERS: Readonly<Record<string, string>> = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };

/** Answers the console's problems as problem+json, on Express and Fastify alike. */
@Catch(ProblemDetailsException)
class ConsoleProblemFilter implements ExceptionFilter {
  constructor(private readonly adapterHost: HttpAdapterHost) {}

  catch(exception: ProblemDetailsException, host: ArgumentsHost): void {
    const response = host.switchToHttp().getResponse<unknown>();
    applyProblemHeaders(response, exception);
    this.adapterHost.httpAdapter.reply(response, exception.problem, exception.getStatus());
  }
}

/**
 * The console's routes (page, assets, JSON, live stream, actions). `ResilienceConsoleModule`
 * serves them under its path, behind its guard, through a subclass made per registration.
 */
class ResilienceConsoleRoutes {
  constructor(
    private readonly console: ResilienceConsole,
    @Inject(RESILIENCE_CONSOLE_OPTIONS) private readonly options: ResolvedConsoleOptions,
  ) {}

  @Get()
  async page(@Req() request: PlatformRequest, @Res({ passthrough: true }) response: unknown): Promise<string> {
    const page = await consolePage(basePathOf(request));
    setHeaders(response, { ...PAGE_HEADERS, 'content-type': page.contentType });
    return page.body;
  }

  @Get('assets/:file')
  async asset(@Param('file') file: string, @Res({ passthrough: true }) response: unknown): Promise<string> {
    const asset = consoleAsset(file);
    if (asset === undefined || file === 'index.html') throw problem(404, 'console_not_found', `The console has no file "${file}".`);
    const { body, contentType } = await asset;
    setHeaders(response, { 'content-type': contentType, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' });
    return body;
  }

  @Get('api/state')
  state(@Res({ passthrough: true }) response: unknown): Promise<ConsoleState> {
    setHeaders(response, API_HEADERS);
    return this.console.state();
  }

  @Get('api/events')
  events(@Query('since') since: string | undefined, @Res({ passthrough: true }) response: unknown): ConsoleEvent[] {
    setHeaders(response, API_HEADERS);
    return this.console.recentEvents(since === undefined ? 0 : Number(since) || 0);
  }

  @Get('api/audit')
  audit(@Res({ passthrough: true }) response: unknown): ConsoleAction[] {
    setHeaders(response, API_HEADERS);
    return this.console.actions();
  }

  @Get('api/chaos')
  chaos(@Res({ passthrough: true }) response: unknown): ConsoleState['chaos'] {
    setHeaders(response, API_HEADERS);
    return this.console.chaosState();
  }

  /** Server-Sent Events: `state` (at once, then every sample and after each transition), `event`, `audit`. */
  @Get('api/stream')
  stream(@Req() request: PlatformRequest, @Res() response: PlatformResponse): void {
    if (this.console.streamCount >= this.options.maxStreams) {
      throw problem(503, 'console_streams_exhausted', `The console serves at most ${this.options.maxStreams} live pages at once. Close one, or raise maxStreams.`, { 'retry-after': '5' });
    }
    const raw: ServerResponse = response.raw ?? (response as unknown as ServerResponse);
    const rawRequest: IncomingMessage = request.raw ?? (request as unknown as IncomingMessage);
    response.hijack?.();
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      // proxies (nginx) must pass each message on at once
      'x-accel-buffering': 'no',
      'x-content-type-options': 'nosniff',
    });
    const close = this.console.openStream({
      write: (chunk) => raw.write(chunk),
      close: () => raw.end(),
      get pending() {
        return raw.writableLength;
      },
    });
    if (close === undefined) {
      raw.end();
      return;
    }
    const done = () => close();
    rawRequest.once('close', done);
    raw.once('close', done);
  }

  @Post('api/breakers/isolate')
  @HttpCode(200)
  isolate(@Req() request: PlatformRequest, @Headers('content-type') type: string | undefined, @Body() body: unknown): ConsoleAction {
    const key = keyOf(type, body);
    return this.run(() => this.console.isolate(key, this.actorOf(request)));
  }

  @Post('api/breakers/reset')
  @HttpCode(200)
  reset(@Req() request: PlatformRequest, @Headers('content-type') type: string | undefined, @Body() body: unknown): ConsoleAction {
    const key = keyOf(type, body);
    return this.run(() => this.console.reset(key, this.actorOf(request)));
  }

  /** Switches a chaos rule on or off (`enabled`), replacing the rule of the same `id`. */
  @Post('api/chaos/rules')
  @HttpCode(200)
  setRule(@Req() request: PlatformRequest, @Headers('content-type') type: string | undefined, @Body() body: unknown): ConsoleChaosRule {
    const init = jsonBody(type, body) as ChaosRuleInit;
    if (typeof init !== 'object' || init === null || Array.isArray(init)) throw invalid('Send a chaos rule as JSON: { "target": { "route": "GET /path" }, "fault": { "kind": "latency", "ms": 1500 }, "rate": 0.5 }.');
    // the console only injects the typed transient error: a rule object cannot carry an error class
    const fault = (init as { fault?: { kind?: unknown; error?: unknown } }).fault;
    if (fault?.kind === 'exception' && fault.error !== undefined) throw invalid('Through the console an exception fault injects an InjectedFaultError: leave out "error" (errors of your own are set in code, ResilienceService.chaos()).');
    return this.run(() => this.console.setChaosRule(init, this.actorOf(request)));
  }

  @Delete('api/chaos/rules/:id')
  @HttpCode(204)
  removeRule(@Req() request: PlatformRequest, @Param('id') id: string): void {
    this.run(() => this.console.removeChaosRule(id, this.actorOf(request)));
  }

  @Delete('api/chaos/rules')
  clearRules(@Req() request: PlatformRequest): { removed: number } {
    return this.run(() => ({ removed: this.console.clearChaos(this.actorOf(request)) }));
  }

  private actorOf(request: PlatformRequest): string {
    const custom = this.options.actor?.(request);
    if (typeof custom === 'string' && custom !== '') return custom;
    return userName(request.user) ?? 'anonymous';
  }

  /** Runs an action, answering the service's refusals as problems. */
  private run<T>(action: () => T): T {
    try {
      return action();
    } catch (error) {
      if (error instanceof UnknownConsoleTargetError) throw problem(404, 'console_unknown_breaker', error.message);
      if (error instanceof ChaosDisabledError) throw problem(409, 'chaos_disabled', error.message);
      if (error instanceof ConsoleReadOnlyError) throw problem(403, 'console_read_only', error.message);
      if (error instanceof ResilienceConfigError) throw invalid(error.message);
      throw error;
    }
  }
}

/** What the console reads of a request on either platform. */
interface PlatformRequest {
  readonly raw?: IncomingMessage;
  readonly url?: string;
  readonly originalUrl?: string;
  readonly user?: unknown;
}

/** What the console uses of a response on either platform. */
interface PlatformResponse {
  readonly raw?: ServerResponse;
  hijack?(): void;
}

/**
 * The console's controller at `path` behind `guard`: a subclass of the routes per registration, so
 * two applications (or two registrations) can serve it under different paths.
 * @internal
 */
export function createConsoleController(path: string, guard: Type<CanActivate> | CanActivate | undefined): Type<unknown> {
  @Controller(path)
  @UseFilters(ConsoleProblemFilter)
  class ResilienceConsoleController extends ResilienceConsoleRoutes {}
  if (guard !== undefined) UseGuards(guard)(ResilienceConsoleController);
  // not part of the application's API: @nestjs/swagger's @ApiExcludeController(), without importing it
  Reflect.defineMetadata('swagger/apiExcludeController', [true], ResilienceConsoleController);
  return ResilienceConsoleController;
}

/** The page's own path with a trailing slash: the base its relative URLs resolve against. */
function basePathOf(request: PlatformRequest): string {
  const url = request.originalUrl ?? request.url ?? request.raw?.url ?? '/';
  const path = url.split('?')[0]!.split('#')[0]!;
  return path.endsWith('/') ? path : `${path}/`;
}

function setHeaders(response: unknown, headers: Readonly<Record<string, string>>): void {
  const reply = response as { raw?: unknown; header?: (name: string, value: string) => unknown; setHeader?: (name: string, value: string) => unknown };
  for (const [name, value] of Object.entries(headers)) {
    if (reply.raw !== undefined && typeof reply.header === 'function') reply.header(name, value);
    else reply.setHeader?.(name, value);
  }
}

/** The request body of an action: JSON only (a cross-site form cannot send it without a CORS preflight). */
function jsonBody(type: string | undefined, body: unknown): unknown {
  if (!/^application\/(?:[\w.+-]+\+)?json\b/i.test(type ?? '')) {
    throw problem(415, 'console_json_required', 'Send the action as JSON (Content-Type: application/json).');
  }
  return body;
}

function keyOf(type: string | undefined, body: unknown): string {
  const key = (jsonBody(type, body) as { key?: unknown } | undefined)?.key;
  if (typeof key !== 'string' || key === '') throw invalid('Name the circuit breaker: send { "key": "<policy key>" }.');
  return key;
}

function userName(user: unknown): string | undefined {
  if (typeof user === 'string' && user !== '') return user;
  if (typeof user !== 'object' || user === null) return undefined;
  for (const field of ['username', 'name', 'email', 'id', 'sub']) {
    const value = (user as Record<string, unknown>)[field];
    if ((typeof value === 'string' && value !== '') || typeof value === 'number') return String(value);
  }
  return undefined;
}

function problem(status: number, code: string, detail: string, headers?: Record<string, string>): ProblemDetailsException {
  return new ProblemDetailsException({ status, code, detail, ...(headers === undefined ? {} : { headers }) });
}

function invalid(detail: string): ProblemDetailsException {
  return problem(400, 'console_invalid_request', detail);
}
