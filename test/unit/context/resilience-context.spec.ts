import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../../lib/testing/fake-clock.js';
import { Cancellation } from '../../../lib/core/cancellation.js';
import {
  Resilience,
  claimCallStore,
  closeCallStore,
  createCallStore,
  currentSignal,
  getRequestInfo,
  onAttemptSettled,
  runAttemptCleanups,
  runWithResilienceContext,
} from '../../../lib/context/resilience-context.js';
import type { ResilienceContextStore } from '../../../lib/context/context-frame.js';

describe('resilience context', () => {
  it('is empty outside a decorated route or method', () => {
    expect(currentSignal()).toBeUndefined();
    expect(Resilience.current()).toBeUndefined();
    expect(getRequestInfo()).toBeUndefined();
    expect(onAttemptSettled(() => undefined)).toBe(false);
  });

  it('exposes the attempt signal, deadline and the remaining time on the module clock', async () => {
    const clock = new FakeClock(10_000);
    const signal = new AbortController().signal;
    const store: ResilienceContextStore = { signal, deadline: 10_500, attempt: 2, policy: 'p', requestId: 'r', route: 'GET /x', clock };
    await runWithResilienceContext(store, async () => {
      await Promise.resolve();
      const current = Resilience.current()!;
      expect(currentSignal()).toBe(signal);
      expect(current).toMatchObject({ signal, deadline: 10_500, attempt: 2, policy: 'p', requestId: 'r', route: 'GET /x' });
      expect(current.remaining()).toBe(500);
      await clock.advance(700);
      expect(current.remaining()).toBe(0);
      expect(getRequestInfo()).toEqual({ requestId: 'r', route: 'GET /x' });
    });
    const unbounded = { ...store, deadline: Infinity };
    runWithResilienceContext(unbounded, () => expect(Resilience.current()!.remaining()).toBe(Infinity));
  });

  it('runs the cleanups of an attempt once, even if one throws', () => {
    const store: ResilienceContextStore = {
      signal: new AbortController().signal,
      deadline: Infinity,
      attempt: 1,
      policy: 'p',
      clock: new FakeClock(),
      cleanups: new Set(),
    };
    let runs = 0;
    runWithResilienceContext(store, () => {
      onAttemptSettled(() => {
        throw new Error('ignored');
      });
      onAttemptSettled(() => runs++);
    });
    runAttemptCleanups(store);
    runAttemptCleanups(store);
    expect(runs).toBe(1);
  });

  it('lets the first attempt of a call take the call store over during the call\'s first pass only', () => {
    const clock = new FakeClock(1_000);
    const root = new Cancellation();
    const store = createCallStore({ policy: 'p', clock }, root);
    const attemptToken = root.child();
    runWithResilienceContext(store, () => {
      expect(Resilience.current()).toMatchObject({ attempt: 0, deadline: Infinity });
      expect(onAttemptSettled(() => undefined)).toBe(false);
      expect(claimCallStore(store, attemptToken, 1_500, 1)).toBe(true);
      // the call's frame now describes the attempt: its token, deadline, number and cleanups
      expect(Resilience.current()).toMatchObject({ attempt: 1, deadline: 1_500 });
      expect(store.cancellation).toBe(attemptToken);
      expect(onAttemptSettled(() => undefined)).toBe(true);
      // a second attempt gets a store of its own
      expect(claimCallStore(store, root.child(), 1_500, 2)).toBe(false);
    });
    const late = createCallStore({ policy: 'p', clock }, root);
    closeCallStore(late);
    expect(claimCallStore(late, attemptToken, 1_500, 1)).toBe(false);
  });
});
