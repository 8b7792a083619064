// Retry amplification under a fully failing dependency: a dependency that answers 503 to every
// call, a fixed offered rate of requests (open loop: requests are sent on schedule whatever the
// answers take), and the figure `upstream calls ÷ requests` held to the budget's documented bound.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DEFAULT_RETRY_BUDGET, type RetryBudgetOptions } from 'nest-resilience/core';
import { classifyProblem, get, keepAliveAgent, networkError } from '../shared/http-client.js';

/** A dependency that answers 503 to every call and counts them. */
export interface FailingUpstream {
  readonly url: string;
  /** Calls received so far. */
  calls(): number;
  /** Milliseconds from the first call to the last (0 before two calls): how long retries went on. */
  spanMs(): number;
  close(): Promise<void>;
}

/** Starts a dependency on loopback that answers every request with 503 (no Retry-After). */
export async function startFailingUpstream(): Promise<FailingUpstream> {
  let calls = 0;
  let first = 0;
  let last = 0;
  const server = createServer((_req, res) => {
    const now = performance.now();
    if (calls === 0) first = now;
    last = now;
    calls++;
    res.writeHead(503, { 'content-type': 'application/json' });
    res.end('{"error":"unavailable"}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    calls: () => calls,
    spanMs: () => last - first,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The answers to an offered load. */
export interface OfferedLoad {
  readonly requests: number;
  /** Answers that were 503 problem+json with Retry-After. */
  readonly expected: number;
  /** The others, by what they were (`200`, `500 not problem+json`, `network error`, …). */
  readonly unexpected: Record<string, number>;
  /** How long sending took, ms (the schedule's length when the machine kept up). */
  readonly sendMs: number;
}

/** Most connections the load generator opens to one server (requests beyond wait for a free one). */
const MAX_CONNECTIONS = 128;

/**
 * Sends `GET url` at `rate` requests per second for `durationMs` on a fixed schedule (a late
 * timer sends every request that is due at once) over at most 128 keep-alive connections, and
 * waits for every answer.
 */
export async function offerFixedRate(url: string, rate: number, durationMs: number): Promise<OfferedLoad> {
  const total = Math.round((rate * durationMs) / 1000);
  const intervalMs = 1000 / rate;
  const unexpected: Record<string, number> = {};
  let expected = 0;
  const pending: Promise<void>[] = [];
  const agent = keepAliveAgent(MAX_CONNECTIONS);
  const send = async () => {
    let outcome: string;
    try {
      outcome = classifyProblem(await get(url, agent), 503, { retryAfter: true });
    } catch (error) {
      outcome = networkError(error);
    }
    if (outcome === 'expected') expected++;
    else unexpected[outcome] = (unexpected[outcome] ?? 0) + 1;
  };
  const started = performance.now();
  let sent = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor((performance.now() - started) / intervalMs) + 1);
      while (sent < due) {
        pending.push(send());
        sent++;
      }
      if (sent >= total) resolve();
      else setTimeout(tick, Math.max(0, started + sent * intervalMs - performance.now()));
    };
    tick();
  });
  const sendMs = performance.now() - started;
  await Promise.all(pending);
  agent.destroy();
  return { requests: total, expected, unexpected, sendMs };
}

/** The amplification figure and its bound. */
export interface Amplification {
  readonly requests: number;
  readonly calls: number;
  /** Seconds the dependency was called over (first call to last). */
  readonly spanSeconds: number;
  /** Budget windows that span touches: ⌈span ÷ window⌉. */
  readonly windows: number;
  /** `calls ÷ requests`. */
  readonly ratio: number;
  /** `minRetriesPerSecond × window × windows ÷ requests`: what the budget's floor may add. */
  readonly floorAllowance: number;
  /** `1 + ratio + floorAllowance`. */
  readonly bound: number;
  readonly withinBound: boolean;
}

/**
 * Holds `calls ÷ requests` to the README's bound for a run of T seconds under a fully failing
 * dependency: calls ≤ (1 + ratio) × requests + floor × ⌈T ÷ window⌉, where the floor is
 * `minRetriesPerSecond × window` (100 with the defaults) and T the time the dependency was called
 * over. The budget's defaults are filled in from `DEFAULT_RETRY_BUDGET`. The bound is exact: the
 * budget holds in every window, and ⌈T ÷ window⌉ disjoint windows cover the run. Offer the load a
 * little less than a whole number of windows, so that the last retries still fall inside them.
 */
export function amplification(requests: number, calls: number, spanMs: number, budget: RetryBudgetOptions = {}): Amplification {
  const ratioAllowed = budget.ratio ?? DEFAULT_RETRY_BUDGET.ratio;
  const perSecond = budget.minRetriesPerSecond ?? DEFAULT_RETRY_BUDGET.minRetriesPerSecond;
  const window = budget.window ?? DEFAULT_RETRY_BUDGET.window;
  const floor = (perSecond * window) / 1000;
  const windows = Math.max(1, Math.ceil(spanMs / window));
  const floorAllowance = (floor * windows) / requests;
  const bound = 1 + ratioAllowed + floorAllowance;
  const ratio = calls / requests;
  return { requests, calls, spanSeconds: spanMs / 1000, windows, ratio, floorAllowance, bound, withinBound: ratio <= bound };
}

/** `upstream calls 4,879 ÷ requests 3,900 = 1.251 (bound 1.2 + floor 100 × 2 windows ÷ requests = 1.251; called over 19.8 s)`. */
export function describeAmplification(figure: Amplification, budget: RetryBudgetOptions = {}): string {
  const ratioAllowed = budget.ratio ?? DEFAULT_RETRY_BUDGET.ratio;
  const floor = ((budget.minRetriesPerSecond ?? DEFAULT_RETRY_BUDGET.minRetriesPerSecond) * (budget.window ?? DEFAULT_RETRY_BUDGET.window)) / 1000;
  const n = (value: number) => value.toLocaleString('en-US');
  return (
    `upstream calls ${n(figure.calls)} ÷ requests ${n(figure.requests)} = ${figure.ratio.toFixed(3)} ` +
    `(bound ${(1 + ratioAllowed).toFixed(1)} + floor ${n(floor)} × ${figure.windows} window${figure.windows === 1 ? '' : 's'} ÷ requests = ${figure.bound.toFixed(3)}; ` +
    `called over ${figure.spanSeconds.toFixed(1)} s)`
  );
}
