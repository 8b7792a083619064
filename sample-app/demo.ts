// `npm run demo`: a scripted tour of the running sample app (start it first with `npm start`).
// BASE_URL (default http://127.0.0.1:3000) and MODEL_SERVICE_URL (default http://127.0.0.1:3001)
// say where the two services are. Exits non-zero if any step did not behave as expected.
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';

/** Where the demo runs and how long it waits. */
export interface DemoOptions {
  /** Base URL of the sample app. */
  baseUrl: string;
  /** Base URL of the model service (for `/chaos` and `/state`). */
  modelUrl: string;
  /** Account that pays for the reports. @default 'acme' */
  account?: string;
  /** Where lines are printed. @default console.log */
  out?: (line: string) => void;
  /** Longest wait for a report to finish, in ms. @default 20000 */
  reportTimeoutMs?: number;
  /** Longest wait for the breaker to close again after the outage, in ms. @default 20000 */
  recoveryTimeoutMs?: number;
  /** How long the first of two concurrent duplicates holds its transaction, in ms. @default 2000 */
  holdMs?: number;
  /** The resilience console's demo login (the chaos step switches a rule through it). @default CONSOLE_USER / CONSOLE_PASSWORD, else demo / demo */
  consoleLogin?: { username: string; password: string };
}

/** One line of the demo table. */
export interface DemoRow {
  step: string;
  request: string;
  result: string;
  expected: string;
  ok: boolean;
}

interface HttpResult {
  status: number;
  headers: Headers;
  body: any;
  ms: number;
}

const COLUMNS = [
  { title: 'step', width: 22 },
  { title: 'request', width: 40 },
  { title: 'result', width: 50 },
  { title: 'expected', width: 34 },
] as const;

/** Runs the tour; resolves with every row and whether all of them passed. */
export async function runDemo(options: DemoOptions): Promise<{ ok: boolean; rows: DemoRow[] }> {
  const base = options.baseUrl.replace(/\/+$/, '');
  const modelUrl = options.modelUrl.replace(/\/+$/, '');
  const account = options.account ?? 'acme';
  const out = options.out ?? ((line: string) => console.log(line));
  const reportTimeoutMs = options.reportTimeoutMs ?? 20_000;
  const recoveryTimeoutMs = options.recoveryTimeoutMs ?? 20_000;
  const holdMs = options.holdMs ?? 2_000;
  const login = options.consoleLogin ?? { username: process.env.CONSOLE_USER || 'demo', password: process.env.CONSOLE_PASSWORD || 'demo' };
  const consoleUrl = `${base}/resilience`;
  const run = randomBytes(3).toString('hex');
  const key = (name: string) => `demo-${run}-${name}`;
  const rows: DemoRow[] = [];

  const http = async (method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<HttpResult> => {
    const started = performance.now();
    const response = await fetch(url, {
      method,
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON (the Prometheus text of /metrics, for instance)
    }
    return { status: response.status, headers: response.headers, body: parsed, ms: Math.round(performance.now() - started) };
  };
  const app = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    http(method, `${base}${path}`, body, { 'x-account-id': account, ...headers });
  const postReport = (idempotencyKey: string, topic: string, headers: Record<string, string> = {}) =>
    app('POST', '/reports', { topic }, { 'idempotency-key': idempotencyKey, ...headers });
  const chaos = (change: Record<string, unknown>) => http('POST', `${modelUrl}/chaos`, change);
  /** The resilience console's JSON API, with the demo login. */
  const consoleApi = (method: string, path: string, body?: unknown) =>
    http(method, `${consoleUrl}/api${path}`, body, { authorization: `Basic ${Buffer.from(`${login.username}:${login.password}`).toString('base64')}` });
  const modelState = async () => (await http('GET', `${modelUrl}/state`)).body as Record<string, number>;
  const credits = async () => (await app('GET', `/accounts/${account}`)).body?.credits as number;
  const waitForReport = async (id: string) => {
    const end = Date.now() + reportTimeoutMs;
    for (;;) {
      const report = await app('GET', `/reports/${id}`);
      if (report.body?.status !== 'processing' || Date.now() > end) return report.body;
      await delay(150);
    }
  };
  const describeReport = (report: any) =>
    report?.status === 'failed'
      ? `failed: ${report.reason}${report.attempts ? ` (${report.attempts} attempts)` : ''}`
      : report?.status === 'completed'
        ? `completed after ${report.attempts} attempt${report.attempts === 1 ? '' : 's'}`
        : `${report?.status ?? 'unknown'}`;
  const short = (id: unknown) => (typeof id === 'string' ? id.slice(0, 8) : String(id));
  const row = (step: string, request: string, result: string, expected: string, ok: boolean) => {
    const entry = { step, request, result, expected, ok };
    rows.push(entry);
    out(formatRow(entry));
  };

  // ── preflight ──────────────────────────────────────────────────────────────────────────────
  await preflight(base, modelUrl);
  await chaos({ failureRate: 0, latencyMs: 150, down: false, hang: false, malformed: false, throttleSeconds: 0, seed: 9 });
  await waitUntilHealthy(app, recoveryTimeoutMs);
  const info = (await app('GET', '/')).body;
  const database = info?.database === 'postgres' ? 'postgres' : 'sqlite';
  // reports generated as BullMQ jobs wait out an open breaker in the queue instead of failing
  const queued = info?.reportJobs === 'bullmq';

  out(`nest-resilience sample app tour — app ${base} (${database}, reports ${queued ? 'as BullMQ jobs' : 'in process'}), model service ${modelUrl}, account "${account}", run ${run}`);
  out(`Watch it live in the resilience console: ${consoleUrl} (login ${login.username} / ${login.password})`);
  out(formatHeader());

  // ── 1. a duplicate POST is replayed and charged once ──────────────────────────────────────
  const before = await credits();
  const first = await postReport(key('dup'), 'tides');
  row(
    'duplicate POST',
    `POST /reports  key=…-dup`,
    `${first.status} ${first.body?.status} id=${short(first.body?.id)}`,
    '202 processing',
    first.status === 202 && first.body?.status === 'processing' && first.headers.get('location') === `/reports/${first.body?.id}`,
  );
  const again = await postReport(key('dup'), 'tides');
  const replayed = again.headers.get('idempotent-replayed');
  row(
    '',
    `POST /reports  same key, same body`,
    `${again.status} id=${short(again.body?.id)} Idempotent-Replayed: ${replayed}`,
    '202, same id, replayed: true',
    again.status === 202 && again.body?.id === first.body?.id && replayed === 'true',
  );
  const after = await credits();
  row('', `GET /accounts/${account}`, `credits ${before} → ${after}`, 'charged once (−1)', after === before - 1);
  const firstReport = await waitForReport(first.body?.id);
  row('', `GET /reports/${short(first.body?.id)}`, describeReport(firstReport), 'completed', firstReport?.status === 'completed');

  // ── 2. a concurrent duplicate is answered 409 at once; after the first commits, a retry replays it ──
  const raceBefore = await credits();
  let firstAnswered = false;
  const holding = postReport(key('race'), 'glaciers', { 'x-demo-hold-ms': String(holdMs) }).then((result) => {
    firstAnswered = true;
    return result;
  });
  await delay(Math.min(500, holdMs / 4));
  const racing = await postReport(key('race'), 'glaciers');
  const answeredWhileHeld = !firstAnswered;
  row(
    'concurrent duplicate',
    'POST /reports ×2 at once  key=…-race',
    `${racing.status} in ${racing.ms} ms, Retry-After: ${racing.headers.get('retry-after')}, ${racing.body?.code ?? ''}`,
    '409 at once, first in flight',
    racing.status === 409 && racing.headers.get('retry-after') !== null && answeredWhileHeld,
  );
  const held = await holding;
  row('', '(the first of the two)', `${held.status} ${held.body?.status} id=${short(held.body?.id)}`, '202 processing', held.status === 202);
  const retried = await postReport(key('race'), 'glaciers');
  const raceAfter = await credits();
  row(
    '',
    'POST /reports  retry after Retry-After',
    `${retried.status} id=${short(retried.body?.id)} replayed: ${retried.headers.get('idempotent-replayed')}; credits −${raceBefore - raceAfter}`,
    '202 replay, charged once',
    retried.status === 202 && retried.body?.id === held.body?.id && retried.headers.get('idempotent-replayed') === 'true' && raceAfter === raceBefore - 1,
  );
  // Let its generation finish so it does not draw from the flaky step's seeded failures.
  await waitForReport(held.body?.id);

  // ── 3. the same key with another body is answered 422 ─────────────────────────────────────
  const mismatch = await postReport(key('dup'), 'volcanoes');
  row(
    'same key, other body',
    `POST /reports  key=…-dup topic=volcanoes`,
    `${mismatch.status} ${mismatch.body?.code ?? ''}`,
    '422, nothing charged',
    mismatch.status === 422,
  );

  // ── 4. a flaky model: the generation succeeds after retries ───────────────────────────────
  await chaos({ failureRate: 0.5, seed: 9, latencyMs: 100 });
  const flakyBefore = await modelState();
  const flaky = await postReport(key('flaky'), 'coral reefs');
  const flakyReport = await waitForReport(flaky.body?.id);
  const flakyAfter = await modelState();
  const failedCalls = flakyAfter.failed - flakyBefore.failed;
  const goodCalls = flakyAfter.succeeded - flakyBefore.succeeded;
  row(
    'flaky model (50 % 503)',
    'POST /reports  (chaos failureRate 0.5)',
    `${describeReport(flakyReport)}; model: ${failedCalls}×503, ${goodCalls}×200`,
    'completed after retries',
    flakyReport?.status === 'completed' && flakyReport.attempts > 1 && failedCalls >= 1,
  );
  await chaos({ failureRate: 0, latencyMs: 150 });

  // ── 5. the model breaks its contract: 502 naming the field, the payload never echoed ─────
  await chaos({ malformed: true });
  const broken = await app('GET', '/preview?topic=maps');
  const echoed = JSON.stringify(broken.body ?? '').includes('A short report');
  row(
    'model breaks contract',
    'GET /preview  (chaos malformed)',
    `${broken.status} ${broken.body?.code ?? ''}: ${String(broken.body?.detail ?? '').replace(/^.*schema at: /, 'at ')}`,
    '502 upstream_contract, $.text',
    broken.status === 502 && broken.body?.code === 'upstream_contract' && String(broken.body?.detail).includes('$.text') && !echoed,
  );
  await chaos({ malformed: false });

  // ── 6. the model throttles (429 + Retry-After): the client pauses every model call ─────────
  await chaos({ throttleSeconds: 2 });
  const throttleBefore = await modelState();
  const throttledPreview = app('GET', '/preview?topic=tsunamis');
  await delay(300);
  const duringPause = await app('GET', '/preview?topic=fjords');
  const afterPause = await throttledPreview;
  const throttleAfter = await modelState();
  const modelCalls = throttleAfter.requests - throttleBefore.requests;
  const throttledCalls = throttleAfter.throttled - throttleBefore.throttled;
  row(
    'model throttles (429)',
    'GET /preview  (chaos throttleSeconds 2)',
    `${afterPause.status} in ${(afterPause.ms / 1000).toFixed(1)} s; model: ${throttledCalls}×429, ${modelCalls - throttledCalls}×200`,
    '200 after the Retry-After pause',
    afterPause.status === 200 && throttledCalls === 1,
  );
  row(
    '',
    'GET /preview  during the pause',
    `${duringPause.status} ${duringPause.body?.code ?? ''} in ${duringPause.ms} ms, Retry-After: ${duringPause.headers.get('retry-after')}`,
    '503 at once, model not called',
    duringPause.status === 503 && duringPause.body?.code === 'upstream_unavailable' && duringPause.ms < 500 && modelCalls === 2,
  );
  await chaos({ throttleSeconds: 0 });

  // ── 7. a hung model: cancelled at the deadline ─────────────────────────────────────────────
  await chaos({ hang: true });
  const hangBefore = await modelState();
  const hangStarted = Date.now();
  const hung = await postReport(key('hang'), 'deep sea vents');
  const hungReport = await waitForReport(hung.body?.id);
  const hangSeconds = ((Date.now() - hangStarted) / 1000).toFixed(1);
  const cancelled = (await modelState()).cancelled - hangBefore.cancelled;
  row(
    'hung model',
    'POST /reports  (chaos hang)',
    `${describeReport(hungReport)} after ${hangSeconds} s, ${cancelled} calls cancelled`,
    'failed: timeout, calls cancelled',
    hungReport?.status === 'failed' && hungReport.reason === 'timeout' && cancelled >= 1,
  );
  await chaos({ hang: false });

  // ── 8. the model is down: the breaker opens, callers fail fast, readiness fails ────────────
  await chaos({ down: true });
  const down1 = await postReport(key('down-1'), 'monsoons');
  if (queued) {
    // its calls may be the ones that open the breaker: then it waits in the queue like the next one
    await delay(2_000);
    const down1Report = (await app('GET', `/reports/${down1.body?.id}`)).body;
    row('model down', 'POST /reports  (chaos down)', describeReport(down1Report), 'failed, or waits', down1Report?.status === 'failed' || down1Report?.status === 'processing');
  } else {
    const down1Report = await waitForReport(down1.body?.id);
    row('model down', 'POST /reports  (chaos down)', describeReport(down1Report), 'failed', down1Report?.status === 'failed');
  }
  const down2 = await postReport(key('down-2'), 'typhoons');
  if (queued) {
    // a BullMQ job that meets the open breaker is delayed (the worker pauses) instead of failing
    await delay(1_000);
    const waiting = (await app('GET', `/reports/${down2.body?.id}`)).body;
    row('', 'POST /reports  (again)', describeReport(waiting), 'processing (waits)', waiting?.status === 'processing');
  } else {
    const down2Report = await waitForReport(down2.body?.id);
    row('', 'POST /reports  (again)', describeReport(down2Report), 'failed: circuit_open', down2Report?.reason === 'circuit_open');
  }
  const fast = await app('GET', '/preview?topic=storms');
  row(
    '',
    'GET /preview?topic=storms',
    `${fast.status} ${fast.body?.code ?? ''} in ${fast.ms} ms, Retry-After: ${fast.headers.get('retry-after')}`,
    '503 circuit_open, fast',
    fast.status === 503 && fast.body?.code === 'circuit_open' && fast.ms < 500,
  );
  // the model's outage is every instance's: readiness stays 200 (degraded), the details say what is wrong
  const sick = await app('GET', '/health');
  const degradedChecks = Object.entries((sick.body?.details ?? {}) as Record<string, { status?: string }>)
    .filter(([, check]) => check.status === 'degraded')
    .map(([name]) => name);
  row(
    '',
    'GET /health',
    `${sick.status} ${sick.body?.status}: ${degradedChecks.join(', ') || '-'}`,
    '200 degraded (model_service)',
    sick.status === 200 && degradedChecks.includes('model_service'),
  );

  // ── 9. the model is back: the breaker closes after its break, everything recovers ──────────
  await chaos({ down: false });
  const recoveryStarted = Date.now();
  let probe = await app('GET', '/preview?topic=recovery');
  while (probe.status !== 200 && Date.now() - recoveryStarted < recoveryTimeoutMs) {
    await delay(500);
    probe = await app('GET', '/preview?topic=recovery');
  }
  row(
    'model back',
    'GET /preview  (probe until 200)',
    `${probe.status} after ${((Date.now() - recoveryStarted) / 1000).toFixed(1)} s`,
    '200 once the break is over',
    probe.status === 200,
  );
  const healthy = await app('GET', '/health');
  row('', 'GET /health', `${healthy.status} ${healthy.body?.status}`, '200 ok', healthy.status === 200);
  const recovered = await postReport(key('back'), 'spring tides');
  const recoveredReport = await waitForReport(recovered.body?.id);
  row('', 'POST /reports', describeReport(recoveredReport), 'completed', recoveredReport?.status === 'completed');
  if (queued) {
    const resumed = await waitForReport(down2.body?.id);
    row('', '(the job that waited)', describeReport(resumed), 'completed', resumed?.status === 'completed');
  }

  // ── 10. a slow model, made by a runtime chaos rule: the preview's fallback answers ─────────
  // (the library's fault injection, switched on through the console's API: the model service is fine)
  const ruleId = `demo-slow-model-${run}`;
  const switched = await consoleApi('POST', '/chaos/rules', { id: ruleId, target: { httpClient: 'model' }, fault: { kind: 'latency', ms: 1_500 }, rate: 1 });
  const slow = switched.status === 200 ? await app('GET', '/preview?topic=auroras') : undefined;
  row(
    'slow model (chaos)',
    'GET /preview  (+1.5 s into model client)',
    slow === undefined
      ? `chaos rule refused: ${switched.status} ${switched.body?.code ?? switched.body?.detail ?? ''}`
      : `${slow.status} ${slow.body?.degraded ? 'fallback, no text' : 'with text'} in ${(slow.ms / 1000).toFixed(1)} s`,
    '200 fallback after the timeouts',
    slow !== undefined && slow.status === 200 && slow.body?.text === null && typeof slow.body?.degraded === 'string' && slow.ms < 2_800,
  );
  const removed = await consoleApi('DELETE', `/chaos/rules/${ruleId}`);
  const fastAgain = await app('GET', '/preview?topic=auroras');
  row(
    '',
    'GET /preview  (rule removed)',
    `${fastAgain.status} in ${fastAgain.ms} ms${typeof fastAgain.body?.text === 'string' ? ', text' : ''}`,
    '200 with the text',
    removed.status === 204 && fastAgain.status === 200 && typeof fastAgain.body?.text === 'string',
  );

  const ok = rows.every((entry) => entry.ok);
  const failed = rows.filter((entry) => !entry.ok).length;
  out('');
  out(ok ? `All ${rows.length} checks passed.` : `${failed} of ${rows.length} checks did NOT behave as expected (marked ✘).`);
  out(`The app's log shows the same story as JSON lines: grep it for "retry", "breaker_opened" or "idempotency_replayed".`);
  out(`The resilience console shows the breakers, the model client and every event of the tour: ${consoleUrl} (login ${login.username} / ${login.password}).`);
  return { ok, rows };
}

async function preflight(base: string, modelUrl: string): Promise<void> {
  const reachable = async (url: string) => {
    try {
      return (await fetch(url, { signal: AbortSignal.timeout(3_000) })).ok;
    } catch {
      return false;
    }
  };
  if (!(await reachable(`${base}/health/live`))) {
    throw new Error(`The sample app is not reachable at ${base}. Start it with \`npm start\` (or set BASE_URL).`);
  }
  if (!(await reachable(`${modelUrl}/state`))) {
    throw new Error(`The model service is not reachable at ${modelUrl}. \`npm start\` runs it; otherwise set MODEL_SERVICE_URL.`);
  }
}

/** A previous run may have left the breaker open: probe until readiness is green again. */
async function waitUntilHealthy(app: (method: string, path: string) => Promise<HttpResult>, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const health = await app('GET', '/health');
    if (health.status === 200) return;
    if (Date.now() > end) {
      throw new Error(`The sample app's /health stayed ${health.status}: ${JSON.stringify(health.body?.error ?? health.body)}`);
    }
    await app('GET', '/preview?topic=warm-up');
    await delay(500);
  }
}

function cell(text: string, width: number): string {
  const flat = text.replace(/\s+/g, ' ');
  return flat.length > width ? `${flat.slice(0, width - 1)}…` : flat.padEnd(width);
}

function formatHeader(): string {
  const titles = COLUMNS.map((column) => cell(column.title, column.width)).join(' │ ');
  const rule = COLUMNS.map((column) => '─'.repeat(column.width)).join('─┼─');
  return `${titles} │ ok\n${rule}─┼───`;
}

function formatRow(row: DemoRow): string {
  const values = [row.step, row.request, row.result, row.expected];
  return `${values.map((value, index) => cell(value, COLUMNS[index].width)).join(' │ ')} │ ${row.ok ? '✔' : '✘'}`;
}

async function main(): Promise<void> {
  const result = await runDemo({
    baseUrl: process.env.BASE_URL || 'http://127.0.0.1:3000',
    modelUrl: process.env.MODEL_SERVICE_URL || 'http://127.0.0.1:3001',
  });
  process.exitCode = result.ok ? 0 : 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : String(error));
    process.exitCode = 1;
  });
}
