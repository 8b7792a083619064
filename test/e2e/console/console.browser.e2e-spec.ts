import type { INestApplication } from '@nestjs/common';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CircuitBreakerService, ResilienceEvents } from 'nest-resilience';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppModule } from '../../../sample-app/app.module.js';
import { startModelService, type ModelService } from '../../../sample-app/model-service/model-service.js';
import { ReportQueue } from '../../../sample-app/reports/report-queue.service.js';
import { DEFAULT_CONSOLE_LOGIN } from '../../../sample-app/sample-app.options.js';
import { findChromium, launchChromium, reportMissingChromium } from '../../support/browser.js';
import { appUrl, createApp } from '../../support/app.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
/** Written by every run; UPDATE_SCREENSHOTS=1 also replaces the one the docs show. */
const SCREENSHOT = join(root, 'build/screenshots/resilience-console.png');
const DOCS_SCREENSHOT = join(root, 'docs/images/resilience-console.png');
const RED = 'rgb(214, 69, 69)';

const chromiumPath = findChromium();
if (chromiumPath === undefined) reportMissingChromium();

// The sample app's console in a real Chromium (playwright-core driving Debian's chromium, headless).
describe.skipIf(chromiumPath === undefined)('the resilience console page in Chromium, on the sample app', () => {
  const dir = mkdtempSync(join(tmpdir(), 'console-browser-'));
  let model: ModelService;
  let app: INestApplication;
  let base: string;
  let browser: { context: BrowserContext; close: () => Promise<void> };
  let page: Page;
  const opened: number[] = [];

  beforeAll(async () => {
    model = await startModelService({ port: 0, latencyMs: 20, failureRate: 0, log: () => undefined });
    app = await createApp(
      'express',
      {
        imports: [
          AppModule.forRoot({
            sqliteFile: join(dir, 'console.sqlite'),
            modelServiceUrl: model.url,
            logLevel: 'silent',
            // the breaker stays open until someone resets it
            breaker: { breakDurationMs: 120_000 },
          }),
        ],
      },
      { listen: true },
    );
    base = await appUrl(app);
    app.get(ResilienceEvents).subscribe((event) => {
      if (event.event === 'breaker_opened' && event.policy === 'model-service') opened.push(Date.now());
    });
    browser = await launchChromium({ httpCredentials: DEFAULT_CONSOLE_LOGIN, viewport: { width: 1360, height: 900 } });
    page = await browser.context.newPage();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await app?.get(ReportQueue).idle();
    await app?.close();
    await model?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const preview = (topic: string) => fetch(`${base}/preview?topic=${topic}`, { headers: { 'x-account-id': 'acme' } });
  const card = (key: string) => page.locator(`[data-breaker="${key}"]`);

  it('loads behind the demo login and goes live', async () => {
    const anonymous = await fetch(`${base}/resilience`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
    const response = await page.goto(`${base}/resilience`);
    expect(response?.status()).toBe(200);
    await page.locator('#link[data-status="live"]').waitFor({ timeout: 5_000 });
    await card('model-service').waitFor({ timeout: 5_000 });
    expect(await card('model-service').getAttribute('data-state')).toBe('closed');
    // the model's HTTP client and the origin it called at start-up (the health probe is outside its policies)
    expect(await page.locator('[data-client="model"]').count()).toBe(1);
  });

  it('turns the breaker opened by the demo red within 2 s', async () => {
    // the demo's "model down" step: every model call fails until the breaker opens
    model.chaos({ down: true });
    for (let call = 0; call < 3 && opened.length === 0; call++) expect((await preview(`down-${call}`)).status).toBe(503);
    expect(opened).toHaveLength(1);
    const red = card('model-service').and(page.locator('[data-state="open"]'));
    await red.waitFor({ timeout: 2_000 });
    const shownAfter = Date.now() - opened[0]!;
    expect(shownAfter).toBeLessThan(2_000);
    const badge = card('model-service').locator('.state');
    expect(await badge.textContent()).toBe('open');
    expect(await badge.evaluate((element) => getComputedStyle(element).backgroundColor)).toBe(RED);
    expect(await page.locator('#events [data-event="breaker_opened"]').count()).toBeGreaterThanOrEqual(1);
  });

  it('"Reset" closes it, and the page lists the action with the demo user', async () => {
    model.chaos({ down: false });
    await card('model-service').getByRole('button', { name: 'Reset' }).click();
    await card('model-service').and(page.locator('[data-state="closed"]')).waitFor({ timeout: 2_000 });
    expect(app.get(CircuitBreakerService).get('model-service')?.state).toBe('closed');
    expect((await preview('back')).status).toBe(200);
    const action = page.locator('#audit li[data-action="reset"]').first();
    await action.waitFor({ timeout: 2_000 });
    expect(await action.textContent()).toContain('demo');
    expect(await action.textContent()).toContain('reset circuit breaker model-service');
  });

  it('"Isolate" asks first, then opens it by hand until reset', async () => {
    page.once('dialog', (dialog) => void dialog.accept());
    await card('model-service').getByRole('button', { name: 'Isolate' }).click();
    await card('model-service').and(page.locator('[data-state="isolated"]')).waitFor({ timeout: 2_000 });
    expect((await preview('isolated')).status).toBe(503);
    await card('model-service').getByRole('button', { name: 'Reset' }).click();
    await card('model-service').and(page.locator('[data-state="closed"]')).waitFor({ timeout: 2_000 });
  });

  it('shows the traffic in the sparkline', async () => {
    for (let call = 0; call < 12; call++) await preview(`traffic-${call}`);
    // the page follows: the breaker judged the calls, and the next samples carry them into the sparkline
    await page.waitForFunction(() => Number(document.querySelector('[data-breaker="model-service"] .facts span:nth-child(2) b')?.textContent) >= 12, undefined, { timeout: 5_000 });
    await page.waitForFunction(
      () => {
        const points = document.querySelector('[data-breaker="model-service"] polyline.calls')?.getAttribute('points') ?? '';
        return points.split(' ').some((point) => Number(point.split(',')[1]) < 30);
      },
      undefined,
      { timeout: 5_000 },
    );
  });

  it('switches a chaos rule on with the page\'s form: the model client slows down and the preview falls back, marked as chaos', async () => {
    const form = page.locator('#chaos-form');
    await form.locator('select[name="targetKind"]').selectOption('httpClient');
    await form.locator('input[name="targetValue"]').fill('model');
    await form.locator('select[name="faultKind"]').selectOption('latency');
    await form.locator('input[name="ms"]').fill('1500');
    await form.locator('input[name="rate"]').fill('1');
    await form.getByRole('button', { name: 'Switch on' }).click();
    await page.locator('#rules tr[data-enabled="true"]').waitFor({ timeout: 2_000 });
    expect(await page.locator('#chaos-badge').textContent()).toBe('CHAOS ON · 1 rule');
    const slow = await preview('auroras');
    expect(await slow.json()).toEqual({ topic: 'auroras', text: null, degraded: 'the model is too slow right now' });
    await page.locator('#events li[data-event="fault_injected"][data-chaos="true"]').first().waitFor({ timeout: 2_000 });
    await page.locator('#events li[data-event="fallback_used"]').first().waitFor({ timeout: 2_000 });
  });

  it('saves a screenshot of the page with the chaos rule on, then removes the rule with its button', async () => {
    mkdirSync(dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    if (process.env.UPDATE_SCREENSHOTS === '1') {
      mkdirSync(dirname(DOCS_SCREENSHOT), { recursive: true });
      copyFileSync(SCREENSHOT, DOCS_SCREENSHOT);
    }
    // and the rule goes with its Remove button
    await page.locator('#rules tr[data-enabled="true"]').getByRole('button', { name: 'Remove' }).click();
    await page.locator('#chaos-badge').waitFor({ state: 'hidden', timeout: 2_000 });
    expect((await (await preview('after-chaos')).json()).text).toEqual(expect.any(String));
  });
});
