import 'reflect-metadata';
import { Controller, Get, Res, ServiceUnavailableException, UseInterceptors, type INestApplication } from '@nestjs/common';
import { request as httpRequest } from 'node:http';
import { ResilienceEvents, ResilienceModule, Retryable, type ResilienceEvent } from 'nest-resilience';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appUrl, createApp, platforms } from '../../support/app.js';
import { RecordsFailure, nextFailure } from './records-failure.js';

/** How many times the handlers ran. */
const probe = { attempts: 0 };

@Controller('committed')
class CommittedController {
  @Get('flushes-then-fails')
  @UseInterceptors(RecordsFailure)
  @Retryable({ maxAttempts: 3, backoff: { type: 'constant', delay: 1 } })
  flushesThenFails(@Res({ passthrough: true }) response: { raw?: { flushHeaders(): void }; flushHeaders?(): void }) {
    probe.attempts++;
    // the status line and headers go out: the answer started, so nothing may be retried after this
    (response.raw ?? (response as { flushHeaders(): void })).flushHeaders();
    throw new ServiceUnavailableException('the dependency is down');
  }

  @Get('fails-before-answering')
  @UseInterceptors(RecordsFailure)
  @Retryable({ maxAttempts: 3, backoff: { type: 'constant', delay: 1 } })
  failsBeforeAnswering() {
    probe.attempts++;
    throw new ServiceUnavailableException('the dependency is down');
  }
}

for (const platform of platforms) {
  describe(`a route whose answer started is not retried (${platform})`, () => {
    let app: INestApplication;
    let baseUrl: string;
    const events: ResilienceEvent[] = [];

    beforeAll(async () => {
      app = await createApp(platform, { imports: [ResilienceModule.forRoot()], controllers: [CommittedController] }, { listen: true });
      baseUrl = await appUrl(app);
      app.get(ResilienceEvents).subscribe((event) => events.push(event));
    });

    afterAll(async () => {
      await app?.close();
    });

    /** Calls `path` and resolves with the error its handler's call failed with. */
    async function failureOf(path: string): Promise<unknown> {
      probe.attempts = 0;
      events.length = 0;
      const failure = nextFailure();
      const client = httpRequest(`${baseUrl}${path}`, (response) => response.resume());
      client.on('error', () => undefined);
      client.end();
      return failure;
    }

    it('runs the handler once when it failed after sending its headers', async () => {
      const error = await failureOf('/committed/flushes-then-fails');
      expect(probe.attempts).toBe(1);
      expect(events.filter((event) => event.event === 'retry')).toHaveLength(0);
      expect(JSON.stringify(error)).toContain('the dependency is down');
    });

    it('retries the same failure while nothing was sent (the check above is what stops it)', async () => {
      await failureOf('/committed/fails-before-answering');
      expect(probe.attempts).toBe(3);
      expect(events.filter((event) => event.event === 'retry')).toHaveLength(2);
    });
  });
}
