import { Controller, Post, Res, Sse, type Type } from '@nestjs/common';
import { describe, expect, it } from 'vitest';
import { Idempotent, InMemoryIdempotencyStore, type IdempotentOptions } from 'nest-resilience';
import { platforms } from '../../support/app.js';
import { createIdempotencyApp } from './support.js';

async function startFailure(controller: Type<unknown>, platform: (typeof platforms)[number], idempotency = {}): Promise<string> {
  try {
    const { app } = await createIdempotencyApp(platform, { controllers: [controller], idempotency: { store: new InMemoryIdempotencyStore(), ...idempotency } });
    await app.close();
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('the application started');
}

function controllerWith(options: IdempotentOptions) {
  @Controller('bad')
  class BadOptionsController {
    @Post()
    @Idempotent(options)
    create() {
      return {};
    }
  }
  return BadOptionsController;
}

@Controller('tx')
class TransactionalController {
  @Post()
  @Idempotent({ transactional: true })
  create() {
    return {};
  }
}

@Controller('raw')
class RawResponseController {
  @Post()
  @Idempotent()
  create(@Res() res: { send(body: unknown): void }) {
    res.send({});
  }
}

@Controller('events')
@Idempotent()
class SseController {
  /** A GET event stream in an @Idempotent() class is fine: safe methods are never affected. */
  @Sse('feed')
  feed() {
    return undefined;
  }

  @Sse('stream')
  @Idempotent()
  stream() {
    return undefined;
  }
}

describe.each(platforms)('start-up validation of @Idempotent() routes (%s)', (platform) => {
  it('refuses transactional routes on a store without runInTransaction, naming TypeOrmIdempotencyStore', async () => {
    expect(await startFailure(TransactionalController, platform)).toMatch(/TransactionalController\.create uses @Idempotent\(\{ transactional: true \}\).*TypeOrmIdempotencyStore/);
  });

  it('refuses routes that write the response themselves through @Res()', async () => {
    expect(await startFailure(RawResponseController, platform)).toMatch(/RawResponseController\.create .*@Res\(\{ passthrough: true \}\)/);
  });

  it('refuses @Sse() routes', async () => {
    expect(await startFailure(SseController, platform)).toMatch(/SseController\.stream is @Idempotent\(\) and @Sse\(\)/);
  });

  it.each([
    [{ replayHeaders: ['Set-Cookie'] }, /Set-Cookie.*can never be replayed/],
    [{ lease: -5 }, /lease of BadOptionsController\.create must be a positive number/],
    [{ transactional: true, failOpen: true }, /both transactional and failOpen/],
  ])('refuses invalid options %o', async (options, message) => {
    expect(await startFailure(controllerWith(options as IdempotentOptions), platform)).toMatch(message);
  });

  it('refuses invalid module-wide options', async () => {
    expect(await startFailure(controllerWith({}), platform, { header: 'Idempotency Key' })).toMatch(/not a valid HTTP header name/);
  });
});
