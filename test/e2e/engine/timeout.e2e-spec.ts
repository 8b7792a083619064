import 'reflect-metadata';
import {
  Controller,
  Get,
  Inject,
  Injectable,
  UseGuards,
  UseInterceptors,
  type CanActivate,
  type ExecutionContext,
  type INestApplication,
} from '@nestjs/common';
import { request as httpRequest } from 'node:http';
import {
  AttemptSignal,
  OperationAbortedError,
  ResilienceEvents,
  ResilienceModule,
  Retryable,
  Timeout,
  currentSignal,
  withDeadline,
  type ResilienceEvent,
} from 'nest-resilience';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { appUrl, createApp, platforms } from '../../support/app.js';
import { startHangingServer, type HangingServer } from './loopback-servers.js';
import { RecordsFailure, nextFailure } from './records-failure.js';

const HANGING_URL = Symbol('HANGING_URL');

/** What the handlers saw, for the assertions. */
const probe = {
  attempts: 0,
  signals: [] as AbortSignal[],
  started: undefined as undefined | (() => void),
};

function resetProbe(): void {
  probe.attempts = 0;
  probe.signals = [];
  probe.started = undefined;
}

/** A guard that lets the request through only once its client's connection is closed. */
@Injectable()
class ClosesClientFirst implements CanActivate {
  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<{ raw?: { socket: import('node:net').Socket }; socket?: import('node:net').Socket }>();
    const socket = (request.raw ?? request).socket!;
    await new Promise<void>((resolve) => {
      socket.once('close', () => resolve());
      socket.destroy();
    });
    return true;
  }
}

/** Sleeps without looking at any signal: the handler that ignores cancellation. */
const ignoreSignal = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

@Controller('timeout')
class TimeoutController {
  constructor(@Inject(HANGING_URL) private readonly hangingUrl: string) {}

  @Get('ignores-signal')
  @Timeout(150)
  async ignoresSignal() {
    probe.attempts++;
    await ignoreSignal(600);
    return { late: true };
  }

  @Get('ignores-signal-retried')
  @Retryable({ maxAttempts: 2, backoff: { type: 'constant', delay: 1 } })
  @Timeout({ attempt: 100, total: 2_000 })
  async ignoresSignalRetried() {
    probe.attempts++;
    await ignoreSignal(600);
    return { late: true };
  }

  @Get('fetch-with-deadline')
  @Timeout(150)
  async fetchWithDeadline() {
    probe.attempts++;
    await fetch(this.hangingUrl, withDeadline());
    return { unreachable: true };
  }

  @Get('fetch-with-attempt-signal')
  @Timeout(150)
  async fetchWithAttemptSignal(@AttemptSignal() signal: AbortSignal) {
    probe.attempts++;
    probe.signals.push(signal);
    await fetch(this.hangingUrl, { signal });
    return { unreachable: true };
  }

  @Get('client-gone-before')
  @UseGuards(ClosesClientFirst)
  @UseInterceptors(RecordsFailure)
  @Retryable()
  @Timeout(5_000)
  clientGoneBefore() {
    probe.attempts++;
    return { ran: true };
  }

  @Get('waits-for-disconnect')
  @Retryable({ backoff: { type: 'constant', delay: 1 } })
  @Timeout({ total: 10_000, attempt: 5_000 })
  async waitsForDisconnect(@AttemptSignal() signal: AbortSignal) {
    probe.attempts++;
    probe.signals.push(signal);
    expect(currentSignal()).toBe(signal);
    probe.started?.();
    await new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
  }
}

for (const platform of platforms) {
  describe(`timeouts and cancellation (${platform})`, () => {
    let hanging: HangingServer;
    let app: INestApplication;
    let baseUrl: string;
    const events: ResilienceEvent[] = [];

    beforeAll(async () => {
      hanging = await startHangingServer();
      app = await createApp(
        platform,
        {
          imports: [ResilienceModule.forRoot()],
          controllers: [TimeoutController],
          providers: [{ provide: HANGING_URL, useValue: hanging.url }],
        },
        { listen: true },
      );
      baseUrl = await appUrl(app);
      // Node loads and compiles its fetch on first use: on a loaded machine that took longer than the
      // routes' 150 ms deadline, which then fired before the request reached the hanging server (no
      // socket to see closed). One fetch here takes that cost out of the tests.
      await fetch(`${baseUrl}/warm-up`).then((response) => response.arrayBuffer());
      app.get(ResilienceEvents).subscribe((event) => events.push(event));
    });

    afterEach(() => {
      resetProbe();
      events.length = 0;
    });

    afterAll(async () => {
      await app?.close();
      await hanging?.close();
    });

    it('answers 503 problem+json with code "timeout" at the deadline although the handler ignores its signal', async () => {
      const response = await request(app.getHttpServer()).get('/timeout/ignores-signal').expect(503);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(response.body).toMatchObject({
        type: 'https://nest-resilience.dev/problems/timeout',
        status: 503,
        code: 'timeout',
      });
      expect(typeof response.body.title).toBe('string');
      expect(typeof response.body.detail).toBe('string');
      expect(probe.attempts).toBe(1);
    });

    it('retries an attempt timeout and then answers with the timeout problem', async () => {
      const response = await request(app.getHttpServer())
        .get('/timeout/ignores-signal-retried')
        .set('x-request-id', 'req-retried')
        .expect(503);
      expect(response.body.code).toBe('timeout');
      expect(probe.attempts).toBe(2);
      const timeouts = events.filter((event) => event.event === 'attempt_timeout');
      expect(timeouts).toHaveLength(2);
      // events carry the request id and route of the request being served
      for (const event of [...timeouts, ...events.filter((e) => e.event === 'retry')]) {
        expect(event).toMatchObject({ requestId: 'req-retried', route: 'GET /timeout/ignores-signal-retried' });
      }
    });

    it('cancels a fetch made with withDeadline(): the hanging server sees its socket closed', async () => {
      const before = hanging.calls();
      const response = await request(app.getHttpServer())
        .get('/timeout/fetch-with-deadline')
        .set('x-request-id', 'req-42')
        .expect(503);
      expect(response.body.code).toBe('timeout');
      await hanging.socketClosed(before + 1);
      const sent = hanging.headers[before]!;
      expect(sent['x-request-id']).toBe('req-42');
      const budget = Number(sent['x-request-timeout-ms']);
      expect(budget).toBeGreaterThan(0);
      expect(budget).toBeLessThanOrEqual(150);
    });

    it('cancels a fetch made with @AttemptSignal(): the hanging server sees its socket closed', async () => {
      const before = hanging.calls();
      await request(app.getHttpServer()).get('/timeout/fetch-with-attempt-signal').expect(503);
      await hanging.socketClosed(before + 1);
      expect(probe.signals).toHaveLength(1);
      expect(probe.signals[0]!.aborted).toBe(true);
      // without a retry, @Timeout(150) is the total deadline: the typed reason is DeadlineExceededError
      expect(probe.signals[0]!.reason).toMatchObject({ name: 'DeadlineExceededError', code: 'timeout' });
    });

    it('never runs the handler of a call whose client is gone before it starts', async () => {
      const failure = nextFailure();
      const client = httpRequest(`${baseUrl}/timeout/client-gone-before`);
      client.on('error', () => undefined);
      client.end();
      const error = await failure;
      expect(probe.attempts).toBe(0);
      expect(error).toMatchObject({ problem: { code: 'aborted' } });
      expect((error as { cause?: Error }).cause).toBeInstanceOf(OperationAbortedError);
      expect((error as { cause: Error }).cause.message).toContain('the client closed the connection');
    });

    it('aborts the handler signal when the client disconnects, and starts no further attempt', async () => {
      const started = new Promise<void>((resolve) => (probe.started = resolve));
      const failedAttempt = new Promise<void>((resolve) =>
        app.get(ResilienceEvents).subscribe((event) => {
          if (event.event === 'attempt_end' && event.outcome === 'failure') resolve();
        }),
      );
      const client = httpRequest(`${baseUrl}/timeout/waits-for-disconnect`);
      client.on('error', () => undefined);
      client.end();
      await started;
      client.destroy();

      await failedAttempt;
      const signal = probe.signals[0]!;
      expect(signal.aborted).toBe(true);
      expect(signal.reason).toBeInstanceOf(OperationAbortedError);
      expect((signal.reason as Error).message).toContain('the client closed the connection');
      // a retry would start on the next timer tick (1 ms backoff); give it far more than that
      await ignoreSignal(50);
      expect(probe.attempts).toBe(1);
      expect(events.some((event) => event.event === 'retry')).toBe(false);
    });
  });
}
