// An ESM Nest application (`"type": "module"`, NodeNext) that installs the packed tarball:
// test/package/tarball.spec.ts compiles it with tsc and runs it. It serves one decorated route and
// prints what a client saw for two requests with the same Idempotency-Key.
import 'reflect-metadata';
import { Body, Controller, HttpCode, Injectable, Module, Post } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DocumentBuilder } from '@nestjs/swagger';
import { Idempotent, ResilienceModule, Retryable, Timeout, currentSignal } from 'nest-resilience';
import { createPipeline } from 'nest-resilience/core';
import { ResilienceSwagger } from 'nest-resilience/swagger';
import { FakeClock } from 'nest-resilience/testing';

@Injectable()
class Reports {
  private created = 0;

  @Retryable({ maxAttempts: 2 })
  async create(title: string): Promise<{ id: number; title: string; signal: boolean }> {
    this.created++;
    return { id: this.created, title, signal: currentSignal() instanceof AbortSignal };
  }
}

@Controller('reports')
class ReportsController {
  constructor(private readonly reports: Reports) {}

  @Post()
  @HttpCode(201)
  @Idempotent()
  @Timeout(5_000)
  create(@Body() body: { title: string }) {
    return this.reports.create(body.title);
  }
}

@Module({ imports: [ResilienceModule.forRoot()], controllers: [ReportsController], providers: [Reports] })
class AppModule {}

const app = await NestFactory.create(AppModule, { logger: false });
await app.listen(0, '127.0.0.1');
const url = `${await app.getUrl()}/reports`;
const send = async () => {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': 'report-1' },
    body: JSON.stringify({ title: 'Q3' }),
  });
  return { status: response.status, replayed: response.headers.get('idempotent-replayed'), body: await response.json() };
};
const document = ResilienceSwagger.createDocument(app, new DocumentBuilder().setTitle('Reports').build());
const keyHeader = (document.paths['/reports']?.post?.parameters ?? []).find((parameter) => 'in' in parameter && parameter.in === 'header');
const first = await send();
const second = await send();
await app.close();
const core = typeof createPipeline === 'function' && new FakeClock().now() === 0;
console.log(JSON.stringify({ first, second, core, keyHeader }));
