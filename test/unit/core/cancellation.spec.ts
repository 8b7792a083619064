import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { FakeClock, seededRandom } from '../../../lib/testing/index.js';
import { Cancellation, cancellationOf, contextWith } from '../../../lib/core/cancellation.js';
import { noopEventSink } from '../../../lib/core/events.js';
import { createPipeline } from '../../../lib/core/pipeline.js';
import { PolicyRegistry } from '../../../lib/core/policy-registry.js';
import type { PolicyEnvironment } from '../../../lib/core/policy.js';

describe('Cancellation', () => {
  it('creates its AbortSignal only when read, already aborted when the token is', () => {
    const token = new Cancellation();
    token.abort('stop');
    expect(token.materializedSignal).toBeUndefined();
    const signal = token.signal;
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBe('stop');
    expect(token.signal).toBe(signal);
  });

  it('aborts listeners, children and a materialised signal once, with the reason', () => {
    const parent = new Cancellation();
    const child = parent.child();
    const grandchild = child.child();
    const seen: unknown[] = [];
    parent.onAbort((reason) => seen.push(reason));
    const signal = grandchild.signal;
    parent.abort('gone');
    parent.abort('again');
    expect(seen).toEqual(['gone']);
    expect([child.aborted, grandchild.aborted, signal.aborted]).toEqual([true, true, true]);
    expect(signal.reason).toBe('gone');
    expect(parent.listenerCount).toBe(0);
  });

  it('forgets unsubscribed listeners and disposed children', () => {
    const parent = new Cancellation();
    const unsubscribe = parent.onAbort(() => {
      throw new Error('must not run');
    });
    const child = parent.child();
    expect(parent.listenerCount).toBe(2);
    unsubscribe();
    child.dispose();
    child.dispose();
    expect(parent.listenerCount).toBe(0);
    parent.abort('x');
    expect(child.aborted).toBe(false);
  });

  it('tells listener objects once, forgets them on unlisten, and reports a throwing one without skipping the rest', async () => {
    const token = new Cancellation();
    const heard: unknown[] = [];
    const throwing = {
      handleAbort: () => {
        throw new Error('listener failed');
      },
    };
    const forgotten = { handleAbort: () => heard.push('forgotten') };
    const kept = { handleAbort: (reason: unknown) => heard.push(reason) };
    token.listen(throwing);
    token.listen(forgotten);
    token.listen(kept);
    token.unlisten(forgotten);
    expect(token.listenerCount).toBe(2);
    const reported = new Promise((resolve) => process.once('uncaughtException', resolve));
    token.abort('stop');
    token.abort('again');
    expect(heard).toEqual(['stop']);
    expect(((await reported) as Error).message).toBe('listener failed');
    token.listen(kept);
    expect(token.listenerCount).toBe(0);
  });

  it('gives a child of an aborted token the same reason, and never calls a listener added too late', () => {
    const parent = new Cancellation();
    parent.abort('early');
    expect(parent.child().reason).toBe('early');
    let called = false;
    parent.onAbort(() => (called = true))();
    expect(called).toBe(false);
  });

  it('follows an external signal with one listener that dispose() removes', () => {
    const controller = new AbortController();
    const token = Cancellation.from(controller.signal);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1);
    token.dispose();
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    const following = Cancellation.from(controller.signal);
    controller.abort('caller');
    expect(following.reason).toBe('caller');
    expect(Cancellation.from(controller.signal).aborted).toBe(true);
  });

  it('builds contexts whose signal is the token signal, created on first read', () => {
    const token = new Cancellation();
    const context = contextWith(token, 100, 2, 'p', 'previous');
    expect(cancellationOf(context)).toBe(token);
    expect({ deadline: context.deadline, attempt: context.attempt, policy: context.policy, previousError: context.previousError }).toEqual({
      deadline: 100,
      attempt: 2,
      policy: 'p',
      previousError: 'previous',
    });
    expect(token.materializedSignal).toBeUndefined();
    expect(context.signal).toBe(token.signal);
    // a context made by hand (or copied) is not the token's: its own signal counts
    expect(cancellationOf({ signal: new AbortController().signal, deadline: 1, attempt: 1, policy: 'p' })).toBeUndefined();
  });

  it('runs a whole pipeline without creating a single AbortSignal when nobody reads one', async () => {
    const clock = new FakeClock();
    const env: PolicyEnvironment = { clock, random: seededRandom(1), events: noopEventSink };
    const pipeline = createPipeline(
      { key: 'lazy', timeout: { total: 1000, attempt: 500 }, retry: { budget: false }, circuitBreaker: {}, bulkhead: {} },
      env,
      new PolicyRegistry(env),
    );
    const caller = new Cancellation();
    const tokens: Cancellation[] = [];
    await expect(
      pipeline.execute(async (context) => {
        tokens.push(cancellationOf(context)!);
        return 'ok';
      }, { cancellation: caller }),
    ).resolves.toBe('ok');
    expect(tokens).toHaveLength(1);
    expect(tokens[0]!.aborted).toBe(true); // settled
    expect(tokens[0]!.materializedSignal).toBeUndefined();
    expect(caller.materializedSignal).toBeUndefined();
    expect(caller.listenerCount).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });
});
