// A stand-in for a slow, flaky text-generation model, built on node:http only so the sample can
// show every failure mode (latency, errors, hangs, outages) on loopback without a network.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Behaviour of the model service; every field can be changed at run time with `POST /chaos`. */
export interface ModelServiceBehaviour {
  /** Delay before answering `POST /generate`, in ms; `-1` means never answer (same as `hang`). */
  latencyMs: number;
  /** Share of `POST /generate` calls answered 503, from 0 to 1. */
  failureRate: number;
  /** When true every route except `/chaos` and `/state` answers 503. */
  down: boolean;
  /** When true `POST /generate` never answers (the timeout demo). */
  hang: boolean;
  /** When true `POST /generate` answers 200 with a body that breaks its contract (`text` is not a string). */
  malformed: boolean;
  /**
   * `POST /generate` answers 429 with `Retry-After` for this many seconds from the moment it is set
   * (the rate-limit demo); 0 turns it off.
   */
  throttleSeconds: number;
}

/** Counters exposed on `GET /state`, so tests and the demo can see what the service lived through. */
export interface ModelServiceStats {
  /** `POST /generate` calls received. */
  requests: number;
  /** Calls answered 200. */
  succeeded: number;
  /** Calls answered 503 (failure rate or down). */
  failed: number;
  /** Calls whose client closed the connection before an answer was sent (cancelled work). */
  cancelled: number;
  /** Calls currently waiting for their answer. */
  inFlight: number;
  /** Calls answered 429 (throttled). */
  throttled: number;
}

/** Live state of a running model service: its behaviour (mutable) and its counters. */
export interface ModelServiceState extends ModelServiceBehaviour, ModelServiceStats {
  /** Seed of the failure-rate randomness (reset by `POST /chaos { seed }`). */
  seed: number;
}

/** Options of {@link startModelService}. */
export interface ModelServiceOptions extends Partial<ModelServiceBehaviour> {
  /** Port to listen on; `0` picks a free one. @default 3001 */
  port?: number;
  /** Interface to listen on. @default '127.0.0.1' */
  host?: string;
  /** Seed of the failure-rate randomness, so a demo or a test fails the same calls every run. @default 1 */
  seed?: number;
  /** Where log lines go. @default a line on stdout prefixed with `[model-service]` */
  log?: (message: string) => void;
}

/** A running model service. */
export interface ModelService {
  /** Base URL, e.g. `http://127.0.0.1:3001`. */
  readonly url: string;
  /** Current behaviour and counters (the same object `/chaos` changes). */
  readonly state: ModelServiceState;
  /** Changes the behaviour in-process, exactly like `POST /chaos`. */
  chaos(change: Partial<ModelServiceBehaviour> & { seed?: number }): ModelServiceState;
  /** Stops listening and drops every open connection (hung calls included). */
  close(): Promise<void>;
}

/**
 * Starts the model service on loopback.
 *
 * Routes: `POST /generate { topic }` → `{ text }` after `latencyMs`, or 503 problem+json at
 * `failureRate` (a third of them with `Retry-After: 1`), 429 + `Retry-After` while `throttleSeconds`
 * last, a contract-breaking 200 when `malformed`; `POST /chaos` changes the behaviour;
 * `GET /state` shows behaviour and counters; `GET /health` is 200, or 503 when `down`.
 * @example
 * const model = await startModelService({ port: 0, failureRate: 0.5, seed: 7 });
 * await fetch(`${model.url}/generate`, { method: 'POST', body: JSON.stringify({ topic: 'tides' }) });
 * await model.close();
 */
export async function startModelService(options: ModelServiceOptions = {}): Promise<ModelService> {
  const log = options.log ?? ((message: string) => console.log(`[model-service] ${message}`));
  const state: ModelServiceState = {
    latencyMs: options.latencyMs ?? 200,
    failureRate: options.failureRate ?? 0,
    down: options.down ?? false,
    hang: options.hang ?? false,
    malformed: options.malformed ?? false,
    throttleSeconds: options.throttleSeconds ?? 0,
    seed: options.seed ?? 1,
    requests: 0,
    succeeded: 0,
    failed: 0,
    cancelled: 0,
    inFlight: 0,
    throttled: 0,
  };
  let random = mulberry32(state.seed);
  /** When the throttling set by `throttleSeconds` ends (ms since the epoch). */
  let throttledUntil = state.throttleSeconds > 0 ? Date.now() + state.throttleSeconds * 1000 : 0;

  const chaos = (change: Partial<ModelServiceBehaviour> & { seed?: number }): ModelServiceState => {
    const applied = validateChaos(change);
    Object.assign(state, applied);
    if (applied.seed !== undefined) random = mulberry32(applied.seed);
    if (applied.throttleSeconds !== undefined) throttledUntil = applied.throttleSeconds > 0 ? Date.now() + applied.throttleSeconds * 1000 : 0;
    log(`chaos ${JSON.stringify(applied)} → ${describeBehaviour(state)}`);
    return state;
  };

  const server = createServer((req, res) => {
    void route(req, res).catch((error: unknown) => {
      log(`internal error: ${String(error)}`);
      if (!res.headersSent) sendProblem(res, 500, 'internal', 'The model service crashed while answering.');
    });
  });

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'POST' && path === '/chaos') {
      const body = await readJson(req);
      if (body === undefined) return sendProblem(res, 400, 'invalid_json', 'The body must be a JSON object.');
      try {
        return sendJson(res, 200, snapshot(chaos(body as Partial<ModelServiceState>)));
      } catch (error) {
        return sendProblem(res, 400, 'invalid_chaos', (error as Error).message);
      }
    }
    if (req.method === 'GET' && path === '/state') return sendJson(res, 200, snapshot(state));
    if (state.down) {
      req.resume();
      if (path === '/generate') {
        state.requests += 1;
        state.failed += 1;
      }
      return sendProblem(res, 503, 'model_down', 'The model service is down (chaos: down).');
    }
    if (req.method === 'GET' && path === '/health') return sendJson(res, 200, { status: 'ok' });
    if (req.method === 'POST' && path === '/generate') return generate(req, res);
    req.resume();
    return sendProblem(res, 404, 'not_found', `No route ${req.method} ${path}; try POST /generate.`);
  }

  async function generate(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = (await readJson(req)) as { topic?: unknown } | undefined;
    const topic = typeof body?.topic === 'string' ? body.topic : undefined;
    if (!topic) return sendProblem(res, 400, 'invalid_request', 'The body must be { "topic": string }.');
    state.requests += 1;
    const call = state.requests;
    const requestId = headerValue(req, 'x-request-id');
    const tag = `#${call}${requestId ? ` req=${requestId}` : ''}`;
    const throttledFor = throttledUntil - Date.now();
    if (throttledFor > 0) {
      state.throttled += 1;
      const seconds = Math.ceil(throttledFor / 1000);
      log(`${tag} generate topic=${JSON.stringify(topic)} → 429, Retry-After: ${seconds}`);
      res.setHeader('Retry-After', String(seconds));
      return sendProblem(res, 429, 'model_throttled', 'Too many requests; slow down.');
    }
    const started = Date.now();
    state.inFlight += 1;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = () => {
      if (settled) return false;
      settled = true;
      state.inFlight -= 1;
      if (timer) clearTimeout(timer);
      return true;
    };
    // A client that gives up (deadline, abort) closes its socket: the work stops here too.
    res.on('close', () => {
      if (!res.writableFinished && finish()) {
        state.cancelled += 1;
        log(`${tag} cancelled: the client closed the connection after ${Date.now() - started} ms`);
      }
    });

    const hang = state.hang || state.latencyMs < 0;
    const fail = !hang && random() < state.failureRate;
    const retryAfter = fail && random() < 1 / 3;
    const remaining = headerValue(req, 'x-request-timeout-ms');
    log(
      `${tag} generate topic=${JSON.stringify(topic)} → ${hang ? 'hang' : fail ? `503 in ${state.latencyMs} ms` : `200 in ${state.latencyMs} ms`}` +
        (remaining ? ` (caller budget ${remaining} ms)` : ''),
    );
    if (hang) return;
    timer = setTimeout(() => {
      if (!finish()) return;
      if (fail) {
        state.failed += 1;
        if (retryAfter) res.setHeader('Retry-After', '1');
        return sendProblem(res, 503, 'model_overloaded', 'The model is overloaded; try again shortly.');
      }
      state.succeeded += 1;
      // chaos malformed: a new model version that renamed its output field
      if (state.malformed) return sendJson(res, 200, { output: composeText(topic), text: null, model: 'tiny-model-2', call });
      sendJson(res, 200, { text: composeText(topic), model: 'tiny-model-1', call });
    }, state.latencyMs);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new Error(
              `Port ${options.port ?? 3001} is in use, so the model service cannot start. ` +
                'Set MODEL_PORT to a free port, or MODEL_SERVICE_URL to use a model service that is already running.',
            )
          : error,
      ),
    );
    server.listen(options.port ?? 3001, options.host ?? '127.0.0.1', resolve);
  });
  const address = server.address() as AddressInfo;
  const url = `http://${address.address}:${address.port}`;
  log(`listening on ${url} (${describeBehaviour(state)}, seed ${state.seed})`);

  return {
    url,
    state,
    chaos,
    close: () => closeServer(server),
  };
}

/**
 * Reads the behaviour from MODEL_LATENCY_MS, MODEL_FAILURE_RATE, MODEL_SEED and MODEL_PORT.
 * Unset, the model fails 30 % of calls with seed 7, whose first call fails (with `Retry-After: 1`):
 * the first report created after `npm start` shows a retry in the log.
 */
export function modelServiceOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): ModelServiceOptions {
  const number = (name: string): number | undefined => {
    const raw = env[name];
    if (raw === undefined || raw === '') return undefined;
    const value = Number(raw);
    if (!Number.isFinite(value)) throw new Error(`${name} must be a number, got "${raw}".`);
    return value;
  };
  return {
    port: number('MODEL_PORT') ?? 3001,
    latencyMs: number('MODEL_LATENCY_MS'),
    failureRate: number('MODEL_FAILURE_RATE') ?? 0.3,
    seed: number('MODEL_SEED') ?? 7,
  };
}

function validateChaos(change: Record<string, unknown>): Partial<ModelServiceBehaviour> & { seed?: number } {
  const applied: Partial<ModelServiceBehaviour> & { seed?: number } = {};
  for (const [name, value] of Object.entries(change)) {
    if (name === 'failureRate') {
      if (typeof value !== 'number' || value < 0 || value > 1) throw new Error('failureRate must be a number from 0 to 1.');
      applied.failureRate = value;
    } else if (name === 'latencyMs') {
      if (typeof value !== 'number' || value < -1) throw new Error('latencyMs must be a number ≥ 0 (or -1 to hang).');
      applied.latencyMs = value;
    } else if (name === 'seed') {
      if (typeof value !== 'number' || !Number.isInteger(value)) throw new Error('seed must be an integer.');
      applied.seed = value;
    } else if (name === 'throttleSeconds') {
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw new Error('throttleSeconds must be a whole number of seconds ≥ 0.');
      applied.throttleSeconds = value;
    } else if (name === 'down' || name === 'hang' || name === 'malformed') {
      if (typeof value !== 'boolean') throw new Error(`${name} must be true or false.`);
      applied[name] = value;
    } else {
      throw new Error(`Unknown chaos setting "${name}"; use failureRate, latencyMs, down, hang, malformed, throttleSeconds or seed.`);
    }
  }
  return applied;
}

function snapshot(state: ModelServiceState): ModelServiceState {
  return { ...state };
}

function describeBehaviour(state: ModelServiceBehaviour): string {
  if (state.down) return 'down';
  if (state.hang || state.latencyMs < 0) return 'hanging';
  if (state.malformed) return `malformed answers, latency ${state.latencyMs} ms`;
  return `latency ${state.latencyMs} ms, failure rate ${state.failureRate}`;
}

function composeText(topic: string): string {
  return `A short report on ${topic}: it matters, it is changing, and the details are in the appendix.`;
}

/** mulberry32: tiny, fast, and the same sequence for the same seed. */
function mulberry32(seed: number): () => number {
  let value = seed >>> 0;
  return () => {
    value = (value + 0x6d2b79f5) >>> 0;
    let t = value;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendProblem(res: ServerResponse, status: number, code: string, detail: string): void {
  const text = JSON.stringify({ type: `about:blank#${code}`, title: code.replaceAll('_', ' '), status, detail, code });
  res.writeHead(status, { 'content-type': 'application/problem+json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function closeServer(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
}
