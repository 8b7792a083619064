import 'reflect-metadata';
import { Test } from '@nestjs/testing';
import { ResilienceModule } from 'nest-resilience';
import { getHttpClientToken, ResilientHttpModule, type HttpClient } from 'nest-resilience/http';
import { FakeClock, observe } from 'nest-resilience/testing';
import { MockAgent } from 'undici';
import { expect, it } from 'vitest';

it('waits out a 429 Retry-After, then retries', async () => {
  const clock = new FakeClock();
  const agent = new MockAgent();
  agent.disableNetConnect(); // nothing leaves the process
  const upstream = agent.get('http://model.test');
  upstream.intercept({ path: '/generate', method: 'POST' }).reply(429, {}, { headers: { 'retry-after': '2' } });
  upstream.intercept({ path: '/generate', method: 'POST' }).reply(200, { text: 'ok' }, { headers: { 'content-type': 'application/json' } });

  const moduleRef = await Test.createTestingModule({
    imports: [
      ResilienceModule.forRoot({ clock }),
      ResilientHttpModule.register({ clients: { model: { baseUrl: 'http://model.test', dispatcher: agent } } }),
    ],
  }).compile();
  await moduleRef.init();
  const model = moduleRef.get<HttpClient>(getHttpClientToken('model'));

  const call = observe(model.post('/generate', { topic: 'x' }));
  await clock.advance(1_999);
  expect(call.settled).toBe(false); // waiting for the Retry-After
  await clock.advance(1); // it has passed: the retry was sent
  await clock.flush();
  expect(call.value?.data).toEqual({ text: 'ok' });

  agent.assertNoPendingInterceptors();
  await moduleRef.close();
  await agent.close();
});
