import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { ResilienceContextStore } from '../../../lib/context/context-frame.js';
import { runAttemptCleanups, runWithResilienceContext } from '../../../lib/context/resilience-context.js';
import { FakeClock } from '../../../lib/testing/fake-clock.js';
import { withDeadline } from '../../../lib/fetch/with-deadline.js';

function attemptContext(overrides: Partial<ResilienceContextStore> = {}): ResilienceContextStore {
  const clock = new FakeClock(1_000);
  return {
    signal: new AbortController().signal,
    deadline: 1_250,
    attempt: 1,
    policy: 'Reports.create',
    requestId: 'req-7',
    clock,
    cleanups: new Set(),
    ...overrides,
  };
}

describe('withDeadline', () => {
  it('returns the init unchanged outside a resilience context', () => {
    const init = { method: 'POST' };
    expect(withDeadline(init)).toBe(init);
  });

  it('adds the attempt signal, the remaining budget and the request id', () => {
    const context = attemptContext();
    const init = runWithResilienceContext(context, () => withDeadline({ headers: { accept: 'application/json' } }));
    const headers = new Headers(init.headers);
    expect(init.signal).toBe(context.signal);
    expect(headers.get('x-request-timeout-ms')).toBe('250');
    expect(headers.get('x-request-id')).toBe('req-7');
    expect(headers.get('accept')).toBe('application/json');
  });

  it('leaves out the budget header without a deadline and keeps a request id already set', () => {
    const context = attemptContext({ deadline: Infinity });
    const init = runWithResilienceContext(context, () => withDeadline({ headers: { 'x-request-id': 'mine' } }));
    const headers = new Headers(init.headers);
    expect(headers.has('x-request-timeout-ms')).toBe(false);
    expect(headers.get('x-request-id')).toBe('mine');
  });

  it('aborts when either the attempt or the caller signal aborts', () => {
    const attempt = new AbortController();
    const own = new AbortController();
    const init = runWithResilienceContext(attemptContext({ signal: attempt.signal }), () => withDeadline({ signal: own.signal }));
    own.abort('caller gave up');
    expect(init.signal!.aborted).toBe(true);
    expect(init.signal!.reason).toBe('caller gave up');

    const attempt2 = new AbortController();
    const init2 = runWithResilienceContext(attemptContext({ signal: attempt2.signal }), () => withDeadline({ signal: new AbortController().signal }));
    attempt2.abort('timeout');
    expect(init2.signal!.reason).toBe('timeout');
  });

  it('leaves no listener on a long-lived caller signal once the attempt settles', () => {
    const longLived = new AbortController().signal;
    for (let i = 0; i < 1_000; i++) {
      const context = attemptContext();
      runWithResilienceContext(context, () => withDeadline({ signal: longLived }));
      runAttemptCleanups(context);
    }
    expect(getEventListeners(longLived, 'abort')).toHaveLength(0);
  });
});
