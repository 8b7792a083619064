// A CommonJS TypeScript application (`module: commonjs`, `moduleResolution: node10`, the default
// of many existing Nest projects and their Jest set-ups) that installs the packed tarball:
// test/package/tarball.spec.ts compiles it with tsc and runs it with plain `node` (require(esm)).
// Every subpath is imported, so a typing that node10 cannot resolve fails the compile (TS2307).
import 'reflect-metadata';
import { Body, Controller, Get, Module, Param, Post } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { CircuitBreaker, Fallback, Idempotent, ResilienceModule, Timeout, type ResilienceModuleOptions } from 'nest-resilience';
import { createPipeline } from 'nest-resilience/core';
import { IdempotencyStoreHealthIndicator } from 'nest-resilience/health';
import { ResilienceSwagger } from 'nest-resilience/swagger';
import { FakeClock } from 'nest-resilience/testing';
import { IdempotencyRecord, TypeOrmIdempotencyStore, idempotencyMigrations } from 'nest-resilience/typeorm';

@Controller('forecast')
class ForecastController {
  @Get(':city')
  @Timeout(2_000)
  @CircuitBreaker()
  @Fallback({ degraded: true })
  async forecast(@Param('city') city: string): Promise<{ city: string; degraded: boolean }> {
    if (city === 'atlantis') throw Object.assign(new Error('the model service is down'), { status: 503 });
    return { city, degraded: false };
  }

  private readonly alerts: string[] = [];

  @Post('alerts')
  @Idempotent()
  async subscribe(@Body() body: { city: string }): Promise<{ subscription: number }> {
    this.alerts.push(body.city);
    return { subscription: this.alerts.length };
  }
}

@Module({
  imports: [
    TypeOrmModule.forRoot({ type: 'better-sqlite3', database: ':memory:', entities: [IdempotencyRecord], migrations: idempotencyMigrations, migrationsRun: true }),
    ResilienceModule.forRootAsync({
      inject: [DataSource],
      useFactory: (dataSource: DataSource): ResilienceModuleOptions => ({ idempotency: { store: new TypeOrmIdempotencyStore(dataSource) } }),
    }),
  ],
  controllers: [ForecastController],
})
class AppModule {}

async function main(): Promise<void> {
  const app = await NestFactory.create(AppModule, { logger: false });
  await app.listen(0, '127.0.0.1');
  const base = await app.getUrl();
  const get = async (path: string) => {
    const response = await fetch(`${base}${path}`);
    return { status: response.status, body: await response.json() };
  };
  const subscribe = async () => {
    const response = await fetch(`${base}/forecast/alerts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': 'alert-1' },
      body: JSON.stringify({ city: 'lisbon' }),
    });
    return { status: response.status, replayed: response.headers.get('idempotent-replayed'), body: await response.json() };
  };
  const ok = await get('/forecast/lisbon');
  const degraded = await get('/forecast/atlantis');
  const first = await subscribe();
  const second = await subscribe();
  const stored = await app.get(DataSource).getRepository(IdempotencyRecord).count();
  await app.close();
  console.log(JSON.stringify({
    ok,
    degraded,
    first,
    second,
    stored,
    exports: [createPipeline, FakeClock, IdempotencyStoreHealthIndicator, ResilienceSwagger].every((value) => typeof value === 'function'),
    commonjs: typeof require === 'function' && typeof module === 'object',
  }));
}

void main();
