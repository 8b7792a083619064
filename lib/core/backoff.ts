import { DEFAULT_BACKOFF } from './defaults.js';
import type { BackoffInfo, BackoffOptions, Jitter } from './options.js';

function applyJitter(delay: number, jitter: Jitter, info: BackoffInfo): number {
  if (jitter === 'full') return info.random.next() * delay;
  if (jitter === 'equal') return delay / 2 + (info.random.next() * delay) / 2;
  return delay;
}

const finiteOr = (value: number | undefined, fallback: number) =>
  typeof value === 'number' && Number.isFinite(value) ? value : fallback;

/**
 * The delay before the retry that follows failed attempt `info.attempt`, in whole ms, never above
 * `maxDelay`. Strategies (n = `info.attempt`):
 * - exponential: `jitter(min(maxDelay, base × factor^(n−1)))`
 * - constant: `jitter(min(maxDelay, delay))`
 * - linear: `jitter(min(maxDelay, base + step × (n−1)))`
 * - decorrelated: `min(maxDelay, base + random × (max(base, 3 × previousDelay) − base))`
 * - delegate: its value capped by `maxDelay` (`undefined` → the default exponential).
 *
 * Full jitter draws `random × d`, equal jitter `d/2 + random × d/2`; each draws once from `info.random`.
 * @publicApi
 */
export function computeBackoffDelay(backoff: BackoffOptions, info: BackoffInfo, maxDelay: number): number {
  const raw = rawDelay(backoff, info, maxDelay);
  return Math.round(Math.min(maxDelay, Math.max(0, finiteOr(raw, 0))));
}

function rawDelay(backoff: BackoffOptions, info: BackoffInfo, maxDelay: number): number {
  if (typeof backoff === 'function') {
    const delegated = backoff(info);
    return delegated === undefined ? rawDelay(DEFAULT_BACKOFF, info, maxDelay) : delegated;
  }
  const n = Math.max(1, info.attempt);
  switch (backoff.type) {
    case 'exponential': {
      const base = backoff.base ?? DEFAULT_BACKOFF.base;
      const factor = backoff.factor ?? DEFAULT_BACKOFF.factor;
      return applyJitter(Math.min(maxDelay, base * factor ** (n - 1)), backoff.jitter ?? 'full', info);
    }
    case 'constant':
      return applyJitter(Math.min(maxDelay, backoff.delay), backoff.jitter ?? 'none', info);
    case 'linear': {
      const base = backoff.base ?? 100;
      const step = backoff.step ?? base;
      return applyJitter(Math.min(maxDelay, base + step * (n - 1)), backoff.jitter ?? 'none', info);
    }
    case 'decorrelated': {
      const base = backoff.base ?? 100;
      const upper = Math.max(base, 3 * (info.previousDelay > 0 ? info.previousDelay : base));
      return Math.min(maxDelay, base + info.random.next() * (upper - base));
    }
  }
}

/**
 * The largest delay the strategy can produce before the retry after attempt `attempt` (jitter at
 * its upper bound), capped by `maxDelay`; `undefined` for a delegate, which cannot be bounded.
 * Start-up validation sums these to check that retries fit the total timeout.
 * @internal
 */
export function maxBackoffDelay(backoff: BackoffOptions, attempt: number, maxDelay: number): number | undefined {
  if (typeof backoff === 'function') return undefined;
  const n = Math.max(1, attempt);
  switch (backoff.type) {
    case 'exponential':
      return Math.min(maxDelay, (backoff.base ?? DEFAULT_BACKOFF.base) * (backoff.factor ?? DEFAULT_BACKOFF.factor) ** (n - 1));
    case 'constant':
      return Math.min(maxDelay, backoff.delay);
    case 'linear': {
      const base = backoff.base ?? 100;
      return Math.min(maxDelay, base + (backoff.step ?? base) * (n - 1));
    }
    case 'decorrelated':
      return Math.min(maxDelay, (backoff.base ?? 100) * 3 ** n);
  }
}
