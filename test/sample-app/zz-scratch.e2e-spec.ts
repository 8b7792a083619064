import { it } from 'vitest';
import request from 'supertest';
it('fastify request id', async () => {
  const { AppModule } = await import('../../sample-app/app.module.js');
  const { createApp } = await import('../support/app.js');
  const app = await createApp('fastify', { imports: [AppModule.forRoot({ sqliteFile: ':memory:', modelServiceUrl: 'http://127.0.0.1:9', logLevel: 'info' })] });
  const r = await request(app.getHttpServer()).get('/health/live').set('x-request-id', 'req-1');
  console.log(r.status, r.headers);
  const r2 = await request(app.getHttpServer()).get('/').set('x-request-id', 'req-1');
  console.log(r2.status, r2.headers);
  await app.close();
}, 20000);
