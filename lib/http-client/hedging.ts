import { Cancellation, cancellationOf } from '../core/cancellation.js';
import { abortErrorOf } from '../core/classify.js';
import type { Clock } from '../core/clock.js';
import { once, type Settle, type Work } from '../core/step.js';
import type { UpstreamError } from '../core/upstream-http.error.js';
import type { CallState } from './call-state.js';

/** Abort reason of a hedged request that lost the race. */
class HedgeLostError extends Error {
  constructor() {
    super('Another request of the same hedged attempt answered first; this one was cancelled.');
    this.name = 'HedgeLostError';
  }
}
const HEDGE_LOST = new HedgeLostError();

/**
 * One attempt of a call that is not hedged: its one request runs under the attempt's own token
 * (nothing else is ever cancelled with it, so it needs no child token, hedge timer or set).
 */
function singleAttempt(state: CallState, reserve: ReserveRequest, send: SendRequest): Work {
  return (context, settle) => {
    const attached = cancellationOf(context);
    // a context made by hand: follow its signal, and stop listening to it once the request ended
    const token = attached ?? Cancellation.from(context.signal);
    const ended: Settle =
      attached === undefined
        ? (failed, outcome) => {
            token.dispose();
            settle(failed, outcome);
          }
        : settle;
    if (state.firstReserved) {
      state.firstReserved = false;
      sendUnder(state, token, context.deadline, ended, send);
    } else
      reserve(state, token, (refusal) => {
        if (refusal !== undefined) ended(true, refusal);
        else sendUnder(state, token, context.deadline, ended, send);
      });
  };
}

/** Sends the request under `token`, unless it aborted while the request waited. */
function sendUnder(state: CallState, token: Cancellation, attemptDeadline: number, settle: Settle, send: SendRequest): void {
  if (token.aborted) settle(true, abortErrorOf(token));
  else send(state, token, attemptDeadline, settle);
}

/** Waits for the origin's gate, then calls `go()`; `go(refusal)` when the wait would pass the call's deadline. */
export type ReserveRequest = (state: CallState, token: Cancellation, go: (refusal?: UpstreamError) => void) => void;
/** Sends one request under `token` and settles with its answer or failure. */
export type SendRequest = (state: CallState, token: Cancellation, attemptDeadline: number, settle: Settle) => void;

/**
 * One attempt of a call as pipeline {@link Work}: the request, and when the call is hedged, up to
 * `maxHedges` more after each `delay` without an answer; the first success wins and the requests
 * still running are cancelled. A hedge is sent only when it can go at once (never after waiting
 * for the rate limit). The first request may already hold its rate-limit token
 * (`state.firstReserved`).
 * @internal
 */
export function hedgedAttempt(state: CallState, clock: Clock, reserve: ReserveRequest, send: SendRequest): Work {
  if (state.hedging === undefined) return singleAttempt(state, reserve, send);
  return (context, settle) => {
    const parent = cancellationOf(context) ?? Cancellation.from(context.signal);
    let hedges = state.hedging ? Math.min(3, Math.max(1, state.hedging.maxHedges ?? 1)) : 0;
    const children: Cancellation[] = [];
    /** Children whose request has not ended: only they are aborted when the attempt ends. */
    const pending = new Set<Cancellation>();
    let running = 0;
    let launched = 0;
    let timer: unknown;
    const finish = once((failed: boolean, outcome: unknown) => {
      // a request that settles the attempt while it is being launched must not arm another hedge
      hedges = 0;
      if (timer !== undefined) clock.clearTimeout(timer);
      for (const child of children) {
        // a request that already ended is only unlinked: aborting it would make undici tear
        // down a response stream it has finished with
        if (pending.has(child) && !child.aborted) child.abort(HEDGE_LOST);
        child.dispose();
      }
      settle(failed, outcome);
    });
    const launch = (reserved: boolean) => {
      timer = undefined;
      const child = parent.child();
      children.push(child);
      pending.add(child);
      launched++;
      running++;
      const ended: Settle = (failed, outcome) => {
        pending.delete(child);
        running--;
        if (!failed) finish(false, outcome);
        // the last request running failed: the attempt failed (a pending hedge is not sent)
        else if (running === 0) finish(true, outcome);
      };
      const sendNow = () => {
        if (child.aborted) ended(true, abortErrorOf(child));
        else send(state, child, context.deadline, ended);
      };
      if (reserved) sendNow();
      else
        reserve(state, child, (refusal) => {
          if (refusal !== undefined) ended(true, refusal);
          else sendNow();
        });
      if (launched <= hedges) {
        timer = clock.setTimeout(() => {
          // a hedge is only worth it when it can go now: it never waits for the rate limit
          if (state.gate.pausedUntil === undefined) launch(false);
        }, state.hedging!.delay);
      }
    };
    const reserved = state.firstReserved;
    state.firstReserved = false;
    launch(reserved);
  };
}
