import 'reflect-metadata';
import { Controller, Get, Injectable, Module, ServiceUnavailableException, type INestApplication } from '@nestjs/common';
import {
  RESOLVED_RESILIENCE_OPTIONS,
  ResilienceModule,
  Retryable,
  Timeout,
  UsePolicy,
  type ResilienceModuleOptions,
  type ResilienceOptionsFactory,
  type ResolvedResilienceOptions,
} from 'nest-resilience';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp, platforms } from '../../support/app.js';

/** Stands in for an application's configuration service. */
@Injectable()
class AppConfig {
  readonly timeoutStatus = 504 as const;
}

@Module({ providers: [AppConfig], exports: [AppConfig] })
class AppConfigModule {}

@Injectable()
class ResilienceConfigFactory implements ResilienceOptionsFactory {
  createResilienceOptions(): ResilienceModuleOptions {
    return { timeout: { status: 408 }, policies: { slow: { timeout: 50 } } };
  }
}

const neverSettles = () => new Promise(() => undefined);

@Controller('slow')
class SlowController {
  @Get('decorated')
  @Timeout(50)
  decorated() {
    return neverSettles();
  }
}

@Controller('slow')
class SlowPolicyController {
  @Get('policy')
  @UsePolicy('slow')
  policy() {
    return neverSettles();
  }
}

let flakyCalls = 0;

@Controller('flaky')
class FlakyController {
  @Get()
  @Retryable({ backoff: { type: 'constant', delay: 1 } })
  get() {
    flakyCalls++;
    throw new ServiceUnavailableException();
  }
}

@Controller('plain')
class PlainController {
  @Get()
  get() {
    flakyCalls++;
    throw new ServiceUnavailableException();
  }
}

@Controller('impossible')
class ImpossibleController {
  @Get()
  @Retryable()
  @Timeout({ total: 100 })
  get() {
    return 'never';
  }
}

@Controller('typo')
class TypoController {
  @Get()
  @UsePolicy('paymnets')
  get() {
    return 'never';
  }
}

for (const platform of platforms) {
  describe(`ResilienceModule configuration (${platform})`, () => {
    let app: INestApplication | undefined;

    afterEach(async () => {
      await app?.close();
      app = undefined;
    });

    it('forRootAsync with useFactory applies the options computed from an injected provider', async () => {
      app = await createApp(platform, {
        imports: [
          ResilienceModule.forRootAsync({
            imports: [AppConfigModule],
            inject: [AppConfig],
            useFactory: (config: AppConfig) => ({ timeout: { status: config.timeoutStatus } }),
          }),
        ],
        controllers: [SlowController],
      });
      expect(app.get<ResolvedResilienceOptions>(RESOLVED_RESILIENCE_OPTIONS).timeout).toEqual({
        total: 30_000,
        attempt: 10_000,
        status: 504,
      });
      const response = await request(app.getHttpServer()).get('/slow/decorated').expect(504);
      expect(response.body).toMatchObject({ status: 504, code: 'timeout' });
    });

    it('forRootAsync with useClass applies the options of createResilienceOptions()', async () => {
      app = await createApp(platform, {
        imports: [ResilienceModule.forRootAsync({ useClass: ResilienceConfigFactory })],
        controllers: [SlowPolicyController],
      });
      const response = await request(app.getHttpServer()).get('/slow/policy').expect(408);
      expect(response.body).toMatchObject({ status: 408, code: 'timeout' });
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    });

    it('forRoot() without options uses the defaults', async () => {
      app = await createApp(platform, { imports: [ResilienceModule.forRoot()], controllers: [] });
      const options = app.get<ResolvedResilienceOptions>(RESOLVED_RESILIENCE_OPTIONS);
      expect(options).toMatchObject({
        enabled: true,
        timeout: { total: 30_000, attempt: 10_000, status: 503 },
        maxPolicyKeys: 1000,
      });
    });

    it('runs decorated routes undecorated with the kill switch enabled: false', async () => {
      app = await createApp(platform, { imports: [ResilienceModule.forRoot({ enabled: false })], controllers: [FlakyController] });
      flakyCalls = 0;
      const response = await request(app.getHttpServer()).get('/flaky').expect(503);
      expect(flakyCalls).toBe(1);
      expect(response.headers['content-type']).toMatch(/^application\/json/);
    });

    it('binds nothing globally: an undecorated route runs as without the module, a decorated one through it', async () => {
      app = await createApp(platform, { imports: [ResilienceModule.forRoot()], controllers: [FlakyController, PlainController] });
      const config = (app as unknown as { config: { getGlobalInterceptors(): unknown[] } }).config;
      expect(config.getGlobalInterceptors()).toEqual([]);
      flakyCalls = 0;
      const plain = await request(app.getHttpServer()).get('/plain').expect(503);
      expect(flakyCalls).toBe(1);
      expect(plain.headers['content-type']).toMatch(/^application\/json/);
      flakyCalls = 0;
      await request(app.getHttpServer()).get('/flaky').expect(503);
      expect(flakyCalls).toBe(3);
    });

    it('refuses the removed interceptors option at start-up, naming the fix', async () => {
      await expect(
        createApp(platform, { imports: [ResilienceModule.forRoot({ interceptors: { mount: false } } as never)], controllers: [] }),
      ).rejects.toThrow('ResilienceModule option interceptors was removed');
    });

    it('refuses to start when a route names an unknown policy, listing the known ones', async () => {
      await expect(
        createApp(platform, {
          imports: [ResilienceModule.forRoot({ policies: { payments: { retry: {} }, search: { timeout: 500 } } })],
          controllers: [TypoController],
        }),
      ).rejects.toThrow(`@UsePolicy('paymnets') on TypoController.get names the policy "paymnets", which is not configured. Known policies: "payments", "search".`);
    });

    it('refuses to start when the retry delays cannot fit in the total timeout, naming the route and the fix', async () => {
      await expect(createApp(platform, { imports: [ResilienceModule.forRoot()], controllers: [ImpossibleController] })).rejects.toThrow(
        'Invalid resilience configuration for GET ImpossibleController.get: the 2 retry delays can add up to 300 ms, which is not less than timeout.total (100 ms)',
      );
    });

    it('refuses to start with an invalid module option, naming the fix', async () => {
      await expect(
        createApp(platform, { imports: [ResilienceModule.forRoot({ timeout: { status: 500 as 503 } })], controllers: [] }),
      ).rejects.toThrow('ResilienceModule option timeout.status is 500. Use 503 (the default), 504 or 408.');
    });
  });
}
