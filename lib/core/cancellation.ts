import type { PolicyContext } from './policy.js';
import type { Settle } from './step.js';

/**
 * An object told when a {@link Cancellation} aborts ({@link Cancellation.listen}): one object can
 * serve as the listener, where a function would be one more closure per call.
 * @internal
 */
export interface AbortListener {
  handleAbort(reason: unknown): void;
}

/** Something told when a {@link Cancellation} aborts: a listener function, a listener object or a linked child. */
type AbortTarget = ((reason: unknown) => void) | AbortListener;

/**
 * The library's internal cancellation token: what policies and the Nest adapter pass around
 * instead of `AbortSignal`s. Creating, linking and aborting one costs a few plain objects, while
 * every `AbortSignal` costs microseconds on Node 20 (the signal is created lazily on the first
 * `controller.signal` read, and `abort()` dispatches a DOM event). The `AbortSignal` that user
 * code sees is materialised only when it is read ({@link signal}); until then an abort only marks
 * the token and tells its listeners.
 *
 * Listeners are kept in a plain array and removed explicitly (`onAbort()` returns the unsubscribe
 * function; a child is unlinked by `dispose()`), so a long-lived token never accumulates them.
 * @internal
 */
export class Cancellation {
  private isAborted = false;
  private abortReason: unknown = undefined;
  /** The one target, while there is exactly one (most tokens never get a second: no array then). */
  private single: AbortTarget | undefined;
  /** The targets, in registration order, once there were two at the same time. */
  private targets: AbortTarget[] | undefined;
  private controller: AbortController | undefined;
  /** The token this one follows, while linked. */
  private parent: Cancellation | undefined;
  /** Removes the listener this token put on an external `AbortSignal` ({@link Cancellation.from}). */
  private detachExternal: (() => void) | undefined;

  /** Whether the token was aborted. */
  get aborted(): boolean {
    return this.isAborted;
  }

  /** The abort reason (`undefined` until aborted). */
  get reason(): unknown {
    return this.abortReason;
  }

  /**
   * An `AbortSignal` that follows this token, created on first read (already aborted, with the
   * token's reason, if the token is). Only user code should read it: the library itself uses
   * {@link aborted}, {@link reason} and {@link onAbort}.
   */
  get signal(): AbortSignal {
    let controller = this.controller;
    if (controller === undefined) {
      controller = new AbortController();
      if (this.isAborted) controller.abort(this.abortReason);
      this.controller = controller;
    }
    return controller.signal;
  }

  /** The signal if someone already read {@link signal}, else `undefined` (never creates it). */
  get materializedSignal(): AbortSignal | undefined {
    return this.controller?.signal;
  }

  /** Listeners and linked children currently registered (for leak checks). */
  get listenerCount(): number {
    return this.single !== undefined ? 1 : (this.targets?.length ?? 0);
  }

  /**
   * Calls `listener` with the reason when the token aborts. Never called if the token is already
   * aborted: check {@link aborted} first. Returns a function that removes the listener.
   */
  onAbort(listener: (reason: unknown) => void): () => void {
    if (this.isAborted) return noop;
    this.add(listener);
    return () => this.remove(listener);
  }

  /**
   * Tells `listener` the reason when the token aborts, until {@link unlisten}. Like
   * {@link onAbort}: never called if the token is already aborted.
   */
  listen(listener: AbortListener): void {
    if (!this.isAborted) this.add(listener);
  }

  /** Removes a listener added by {@link listen} (no-op if it is not registered). */
  unlisten(listener: AbortListener): void {
    this.remove(listener);
  }

  /** @internal a linked child follows its parent's abort. */
  handleAbort(reason: unknown): void {
    this.abort(reason);
  }

  /** Aborts the token (no-op if already aborted): children, listeners, then the materialised signal. */
  abort(reason: unknown): void {
    if (this.isAborted) return;
    this.isAborted = true;
    this.abortReason = reason;
    this.unlink();
    const single = this.single;
    this.single = undefined;
    if (single !== undefined) tell(single, reason);
    const targets = this.targets;
    this.targets = undefined;
    if (targets !== undefined) {
      for (const target of targets) tell(target, reason);
    }
    if (this.controller !== undefined && !this.controller.signal.aborted) this.controller.abort(reason);
  }

  /**
   * A token aborted (with the same reason) when this one aborts; already aborted if this one is.
   * Call `dispose()` on the child when it is no longer needed: it unlinks it from this token.
   */
  child(): Cancellation {
    const child = new Cancellation();
    if (this.isAborted) child.abort(this.abortReason);
    else {
      child.parent = this;
      this.add(child);
    }
    return child;
  }

  /** Unlinks this token from its parent token or external signal. Safe to call more than once. */
  dispose(): void {
    this.unlink();
  }

  /**
   * A token that follows `signal` (one listener on it, removed by `dispose()` or when either
   * aborts). Without a signal, a fresh token that only aborts when told to.
   */
  static from(signal?: AbortSignal): Cancellation {
    const token = new Cancellation();
    if (signal === undefined) return token;
    if (signal.aborted) {
      token.abort(signal.reason);
      return token;
    }
    const onAbort = () => token.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    token.detachExternal = () => signal.removeEventListener('abort', onAbort);
    return token;
  }

  private unlink(): void {
    if (this.parent !== undefined) {
      this.parent.remove(this);
      this.parent = undefined;
    }
    if (this.detachExternal !== undefined) {
      this.detachExternal();
      this.detachExternal = undefined;
    }
  }

  private add(target: AbortTarget): void {
    const targets = this.targets;
    if (targets !== undefined) targets.push(target);
    else if (this.single === undefined) this.single = target;
    else {
      // exact size: most tokens that get a second target never get a third
      this.targets = [this.single, target];
      this.single = undefined;
    }
  }

  private remove(target: AbortTarget): void {
    if (this.single !== undefined) {
      if (this.single === target) this.single = undefined;
      return;
    }
    const targets = this.targets;
    if (targets === undefined) return;
    if (targets.length === 1) {
      if (targets[0] === target) this.targets = undefined;
      return;
    }
    // the newest registration is the likeliest to leave first (nested, short-lived work)
    const index = targets.lastIndexOf(target);
    if (index === -1) return;
    if (index === targets.length - 1) targets.pop();
    else targets.splice(index, 1);
  }
}

function noop(): void {}

/** Tells one target of an aborting token; like an EventTarget listener, a throw is reported without stopping the others. */
function tell(target: AbortTarget, reason: unknown): void {
  try {
    if (typeof target === 'function') target(reason);
    else target.handleAbort(reason);
  } catch (error) {
    queueMicrotask(() => {
      throw error;
    });
  }
}

const CANCELLATION: unique symbol = Symbol('nest-resilience.cancellation');

/**
 * An execution context built by the library: it carries its token, and its `signal` is a getter
 * (on the prototype, which keeps creating one as cheap as a plain object) that materialises the
 * token's signal only when read.
 */
class TokenContext implements PolicyContext {
  /** Symbol-keyed: user code that logs or compares contexts never walks into the token graph. */
  readonly [CANCELLATION]: Cancellation;

  constructor(
    cancellation: Cancellation,
    readonly deadline: number,
    readonly attempt: number,
    readonly policy: string,
    readonly previousError: unknown,
  ) {
    this[CANCELLATION] = cancellation;
  }

  get signal(): AbortSignal {
    return this[CANCELLATION].signal;
  }
}

/**
 * An execution context whose `signal` is the token's, created only if read. Derive contexts with
 * this function (never by spreading one: `signal` is an accessor, a spread copy has none).
 * @internal
 */
export function contextWith(
  cancellation: Cancellation,
  deadline: number,
  attempt: number,
  policy: string,
  previousError?: unknown,
): PolicyContext {
  return new TokenContext(cancellation, deadline, attempt, policy, previousError);
}

/**
 * The token of a context built by {@link contextWith}, or `undefined` for any other context (one
 * made by hand or copied: then its `signal` is what counts).
 * @internal
 */
export function cancellationOf(context: PolicyContext): Cancellation | undefined {
  return context instanceof TokenContext ? context[CANCELLATION] : undefined;
}

/**
 * The token a policy follows for `context`: the one the pipeline attached, or (for a context made
 * by hand) a token following its signal, which `done` stops following once the call settles.
 * @internal
 */
export function followContext(context: PolicyContext, settle: Settle): { readonly token: Cancellation; readonly done: Settle } {
  const attached = cancellationOf(context);
  if (attached !== undefined) return { token: attached, done: settle };
  const token = Cancellation.from(context.signal);
  return {
    token,
    done: (failed, outcome) => {
      token.dispose();
      settle(failed, outcome);
    },
  };
}
