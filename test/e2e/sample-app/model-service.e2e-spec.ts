import { afterEach, describe, expect, it } from 'vitest';
import { startModelService, type ModelService } from '../../../sample-app/model-service/model-service.js';

const post = (url: string, body: unknown, init: RequestInit = {}) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), ...init });

/** Resolves once `predicate` holds, polling every 5 ms; fails after `timeoutMs`. */
async function until(predicate: () => boolean, timeoutMs = 2000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('model service (node:http, loopback)', () => {
  let model: ModelService | undefined;
  const logs: string[] = [];
  const start = async (options: Parameters<typeof startModelService>[0] = {}) => {
    model = await startModelService({ port: 0, latencyMs: 0, log: (line) => logs.push(line), ...options });
    return model;
  };

  afterEach(async () => {
    await model?.close();
    model = undefined;
    logs.length = 0;
  });

  it('answers POST /generate with a text about the topic, and GET /health', async () => {
    const { url } = await start();
    const response = await post(`${url}/generate`, { topic: 'tides' });
    expect(response.status).toBe(200);
    expect((await response.json()).text).toContain('tides');
    expect((await fetch(`${url}/health`)).status).toBe(200);
  });

  it('rejects a body without a topic with 400 problem+json', async () => {
    const { url } = await start();
    const response = await post(`${url}/generate`, { subject: 'x' });
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toBe('application/problem+json');
    expect((await response.json()).code).toBe('invalid_request');
  });

  it('fails the same calls for the same seed (503, some with Retry-After: 1)', async () => {
    const outcomes = async () => {
      const service = await start({ failureRate: 0.5, seed: 9 });
      const seen: string[] = [];
      for (let i = 0; i < 6; i++) {
        const response = await post(`${service.url}/generate`, { topic: 't' });
        await response.arrayBuffer();
        seen.push(`${response.status}${response.headers.get('retry-after') ? '+RA' : ''}`);
      }
      await service.close();
      model = undefined;
      return seen;
    };
    const first = await outcomes();
    expect(first).toEqual(await outcomes());
    // seed 9 is the one the sample-app tests and the demo use: two failures, then a success
    expect(first.slice(0, 3)).toEqual(['503', '503', '200']);
  });

  it('changes behaviour through POST /chaos and validates it', async () => {
    const { url, state } = await start();
    const changed = await post(`${url}/chaos`, { down: true });
    expect(changed.status).toBe(200);
    expect(state.down).toBe(true);
    expect((await fetch(`${url}/health`)).status).toBe(503);
    expect((await post(`${url}/generate`, { topic: 't' })).status).toBe(503);
    const invalid = await post(`${url}/chaos`, { failureRate: 2 });
    expect(invalid.status).toBe(400);
    expect((await invalid.json()).detail).toContain('failureRate');
    await post(`${url}/chaos`, { down: false });
    expect((await fetch(`${url}/health`)).status).toBe(200);
  });

  it('never answers a hung call and notices when the client gives up', async () => {
    const service = await start({ hang: true });
    const controller = new AbortController();
    const call = post(`${service.url}/generate`, { topic: 't' }, { signal: controller.signal });
    await until(() => service.state.inFlight === 1);
    controller.abort();
    await expect(call).rejects.toThrow();
    await until(() => service.state.cancelled === 1);
    expect(service.state.inFlight).toBe(0);
    expect(logs.some((line) => line.includes('cancelled: the client closed the connection'))).toBe(true);
  });

  it('treats latencyMs -1 as a hang', async () => {
    const service = await start({ latencyMs: -1 });
    const controller = new AbortController();
    const call = post(`${service.url}/generate`, { topic: 't' }, { signal: controller.signal });
    await until(() => service.state.inFlight === 1);
    controller.abort();
    await expect(call).rejects.toThrow();
    await until(() => service.state.cancelled === 1);
  });

  it('answers 429 with Retry-After while throttleSeconds last, and a contract-breaking 200 when malformed', async () => {
    const service = await start({ throttleSeconds: 3 });
    const throttled = await post(`${service.url}/generate`, { topic: 't' });
    expect(throttled.status).toBe(429);
    expect(throttled.headers.get('retry-after')).toBe('3');
    expect(service.state.throttled).toBe(1);
    service.chaos({ throttleSeconds: 0, malformed: true });
    const malformed = await post(`${service.url}/generate`, { topic: 't' });
    expect(malformed.status).toBe(200);
    expect(await malformed.json()).toMatchObject({ text: null, output: expect.stringContaining('t') });
    expect(() => service.chaos({ throttleSeconds: -1 } as never)).toThrow(/throttleSeconds must be a whole number/);
  });
});
