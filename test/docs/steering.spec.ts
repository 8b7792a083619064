// The steering guide's reload snippet (docs/snippets/steering/app.module.ts) starts from its settings
// source, reloads from it and from its admin route, and refuses an invalid body with the start-up text.
import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { ResilienceEvents, ResilienceService, type ResilienceEvent } from 'nest-resilience';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp } from '../support/app.js';
import { AppModule, ResilienceSettings } from '../../docs/snippets/steering/app.module.js';

describe('options reload (steering guide)', () => {
  let app: INestApplication | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it('starts from the source, reloads from it and from the admin route, and refuses an invalid body with the start-up text', async () => {
    app = await createApp('express', { imports: [AppModule] });
    const events: ResilienceEvent[] = [];
    app.get(ResilienceEvents).subscribe((event) => events.push(event));
    app.get(ResilienceSettings).changes.next({ retry: { maxAttempts: 5 } });
    expect(events.filter((event) => event.event === 'options_reloaded')).toMatchObject([{ detail: 'retry changed; every policy kept its state' }]);
    const refused = await request(app.getHttpServer()).post('/admin/resilience').send({ retry: { maxAttempts: 0 } }).expect(500);
    expect(refused.body).toMatchObject({ code: 'config_invalid' });
    expect(events.at(-1)).toMatchObject({ event: 'options_reload_refused' });
    expect(events.at(-1)?.detail).toMatch(/retry.maxAttempts is 0/);
    const applied = await request(app.getHttpServer()).post('/admin/resilience').send({ timeout: { total: 5_000 } }).expect(201);
    expect(applied.body).toEqual({ changed: ['timeout'], resets: [] });
    expect(app.get(ResilienceService)).toBeDefined();
  });
});
