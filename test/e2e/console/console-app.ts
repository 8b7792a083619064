import { Body, Controller, Get, HttpException, Injectable, Post, Query, type CanActivate, type ExecutionContext, type LoggerService } from '@nestjs/common';
import { Bulkhead, CircuitBreaker, Retryable, Timeout } from 'nest-resilience';
import { setTimeout as sleep } from 'node:timers/promises';

/** A bearer token per operator: what the console's guard checks in these tests. */
export const OPERATORS: Readonly<Record<string, { username: string }>> = {
  'token-alice': { username: 'alice' },
  'token-bob': { username: 'bob' },
};

/** Lets through requests with a known bearer token and sets `request.user`, as a JWT guard would. */
@Injectable()
export class OperatorGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<{ headers: Record<string, string | undefined>; user?: unknown }>();
    const token = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1];
    const operator = token === undefined ? undefined : OPERATORS[token];
    if (operator === undefined) return false;
    request.user = operator;
    return true;
  }
}

/** Routes with a breaker that fails on demand, a bulkhead that can be held full and a retried route. */
@Controller('shop')
export class ShopController {
  private failing = false;

  @Post('payments/failing')
  setFailing(@Body() body: { failing: boolean }): { failing: boolean } {
    this.failing = body.failing;
    return { failing: this.failing };
  }

  @Get('payments')
  @CircuitBreaker({ key: 'payments', strategy: { type: 'consecutive', threshold: 2 }, breakDuration: 60_000 })
  payments(): { paid: boolean } {
    if (this.failing) throw new HttpException('payment provider down', 502);
    return { paid: true };
  }

  @Get('slow')
  @Bulkhead({ maxConcurrent: 2, maxQueue: 3 })
  async slow(@Query('ms') ms = '0'): Promise<{ waited: number }> {
    await sleep(Number(ms));
    return { waited: Number(ms) };
  }

  @Get('flaky')
  @Timeout({ total: 5_000, attempt: 1_000 })
  @Retryable({ maxAttempts: 2, backoff: { type: 'constant', delay: 1 } })
  flaky(@Query('fail') fail?: string): { ok: boolean } {
    if (fail === 'yes') throw new HttpException('flaky', 503);
    return { ok: true };
  }
}

/** Collects what the app logs, to check the console's audit lines. */
export class CapturingLogger implements LoggerService {
  readonly lines: Array<{ level: string; message: unknown; context?: string }> = [];
  log(message: unknown, context?: string) {
    this.lines.push({ level: 'log', message, context });
  }
  warn(message: unknown, context?: string) {
    this.lines.push({ level: 'warn', message, context });
  }
  error(message: unknown, context?: string) {
    this.lines.push({ level: 'error', message, context });
  }
  debug() {}
  verbose() {}
}

/** The parsed Server-Sent Events of a stream, as they arrive. */
export interface SseReader {
  /** Resolves with the next message named `event` whose data satisfies `match`, within `timeoutMs` (earlier ones of that name are passed over). */
  next(event: string, match?: (data: any) => boolean, timeoutMs?: number): Promise<any>;
  close(): void;
}

/** Opens `url` as an event stream with `headers` (Node's fetch; no browser needed for the protocol). */
export async function openEventStream(url: string, headers: Record<string, string>): Promise<{ status: number; contentType: string | null; reader: SseReader }> {
  const controller = new AbortController();
  const response = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: controller.signal });
  const messages: Array<{ event: string; data: any }> = [];
  const waiters = new Set<() => void>();
  if (response.ok && response.body) {
    void (async () => {
      const decoder = new TextDecoder();
      let buffer = '';
      try {
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
          buffer += decoder.decode(chunk, { stream: true });
          let end: number;
          while ((end = buffer.indexOf('\n\n')) !== -1) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const event = /^event: (.*)$/m.exec(block)?.[1];
            const data = /^data: (.*)$/m.exec(block)?.[1];
            if (event !== undefined && data !== undefined) messages.push({ event, data: JSON.parse(data) });
            for (const wake of waiters) wake();
          }
        }
      } catch {
        // aborted by close()
      }
    })();
  }
  // one cursor per message name: waiting for a state does not skip the events that came meanwhile
  const cursors = new Map<string, number>();
  return {
    status: response.status,
    contentType: response.headers.get('content-type'),
    reader: {
      async next(event, match = () => true, timeoutMs = 5_000) {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          for (let index = cursors.get(event) ?? 0; index < messages.length; index++) {
            const message = messages[index]!;
            if (message.event !== event) continue;
            cursors.set(event, index + 1);
            if (match(message.data)) return message.data;
          }
          const left = deadline - Date.now();
          if (left <= 0) throw new Error(`No "${event}" message matched within ${timeoutMs} ms`);
          await new Promise<void>((resolve) => {
            const wake = () => {
              waiters.delete(wake);
              clearTimeout(timer);
              resolve();
            };
            const timer = setTimeout(wake, left);
            waiters.add(wake);
          });
        }
      },
      close: () => controller.abort(),
    },
  };
}
