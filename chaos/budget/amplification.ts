// Retry amplification under a fully failing dependency: a dependency that answers 503 to every
// call, a fixed offered rate of requests (open loop: requests are sent on schedule whatever the
// answers take), and the figure `upstream calls ÷ requests` held to the budget's documented bound.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DEFAULT_RETRY_BUDGET, type RetryBudgetOptions } from 'nest-resilience';
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
  /** Seconds the load was offered over (the schedule's length, longer if the sender lagged). */
  readonly durationSeconds: number;
  /** `calls ÷ requests`. */
  readonly ratio: number;
  /** `minRetriesPerSecond × duration ÷ requests`: what the budget's floor may add. */
  readonly floorAllowance: number;
  /** `1 + ratio + floorAllowance`: the documented bound (calls ≤ (1 + ratio) × offered load + floor per second). */
  readonly bound: number;
  readonly withinBound: boolean;
}

/**
 * Holds `calls ÷ requests` to `1 + budget.ratio + budget.minRetriesPerSecond × duration ÷ requests`
 * (the README: calls ≤ 1.2 × offered load + 10/s), the budget's defaults filled in from
 * `DEFAULT_RETRY_BUDGET`. Offer the load for a whole number of budget windows: the floor is
 * granted per window, so a partial window may add up to one window's floor more.
 */
export function amplification(requests: number, calls: number, durationMs: number, budget: RetryBudgetOptions = {}): Amplification {
  const ratioAllowed = budget.ratio ?? DEFAULT_RETRY_BUDGET.ratio;
  const perSecond = budget.minRetriesPerSecond ?? DEFAULT_RETRY_BUDGET.minRetriesPerSecond;
  const durationSeconds = durationMs / 1000;
  const floorAllowance = (perSecond * durationSeconds) / requests;
  const bound = 1 + ratioAllowed + floorAllowance;
  const ratio = calls / requests;
  return { requests, calls, durationSeconds, ratio, floorAllowance, bound, withinBound: ratio <= bound };
}

/** `upstream calls 5,012 ÷ requests 4,000 = 1.253 (bound 1.2 + floor 0.050 for 20.0 s = 1.250)`. */
export function describeAmplification(figure: Amplification, budget: RetryBudgetOptions = {}): string {
  const ratioAllowed = budget.ratio ?? DEFAULT_RETRY_BUDGET.ratio;
  const n = (value: number) => value.toLocaleString('en-US');
  return (
    `upstream calls ${n(figure.calls)} ÷ requests ${n(figure.requests)} = ${figure.ratio.toFixed(3)} ` +
    `(bound ${(1 + ratioAllowed).toFixed(1)} + floor ${figure.floorAllowance.toFixed(3)} for ${figure.durationSeconds.toFixed(1)} s = ${figure.bound.toFixed(3)})`
  );
}
