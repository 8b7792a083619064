import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import type { AbortListener, Cancellation } from '../core/cancellation.js';
import type { Settle } from '../core/step.js';
import { networkError } from './call-errors.js';
import type { CallState, RawAnswer } from './call-state.js';

/** Reads a whole answer and settles the request with what it means (one function per client, not per request). @internal */
export type AnswerReader = (state: CallState, answer: RawAnswer, token: Cancellation, settle: Settle) => void;

/**
 * Sends one request through `dispatcher.dispatch()` with a handler that buffers the answer, and
 * hands the {@link RawAnswer} to `read`, or settles with the failure. It is cancelled through the controller undici
 * hands over, so a request costs no `AbortSignal`, no listener on one and no body stream
 * (measured: `undici.request({ signal })` keeps 0.75–0.88 of a plain request, a handler-driven
 * dispatch is faster than either; BENCHMARKS.md). A token aborted before undici starts the request
 * settles the call at once, and the request is aborted as soon as undici starts it.
 * @internal
 */
export function dispatchRequest(
  dispatcher: Dispatcher,
  client: string,
  state: CallState,
  token: Cancellation,
  headers: Record<string, string>,
  read: AnswerReader,
  settle: Settle,
): void {
  // a token that is already aborted never calls its listeners: nothing may be sent
  if (token.aborted) {
    settle(true, token.reason);
    return;
  }
  const handler = new BufferingHandler(client, state, token, read, settle);
  token.listen(handler);
  try {
    dispatcher.dispatch({ origin: state.origin, path: state.href.slice(state.origin.length) || '/', method: state.method, headers, body: state.body ?? null }, handler);
  } catch (error) {
    handler.finish(true, networkError(error, state, client));
  }
}

/**
 * One request's undici handler and abort listener in one object (a request costs this object, not
 * a closure per callback): buffers the answer and settles once, on its end, its error or the
 * token's abort.
 */
class BufferingHandler implements Dispatcher.DispatchHandler, AbortListener {
  private readonly chunks: Buffer[] = [];
  private controller: Dispatcher.DispatchController | undefined;
  private status = 0;
  private answerHeaders: IncomingHttpHeaders = {};
  private open = true;

  constructor(
    private readonly client: string,
    private readonly state: CallState,
    private readonly token: Cancellation,
    private readonly read: AnswerReader,
    private readonly settle: Settle,
  ) {}

  /** The token aborted: the request is aborted (once undici started it) and the call settles with the reason. */
  handleAbort(reason: unknown): void {
    this.controller?.abort(asError(reason));
    this.finish(true, reason);
  }

  /** Settles with a failure, once, and stops listening to the token. */
  finish(failed: true, outcome: unknown): void {
    if (!this.close()) return;
    this.settle(failed, outcome);
  }

  /** Whether the request was still open (it is closed now, and no longer listens to the token). */
  private close(): boolean {
    if (!this.open) return false;
    this.open = false;
    this.token.unlisten(this);
    return true;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // aborted before undici started it: the call already settled (the listener above ran)
    if (this.token.aborted) controller.abort(asError(this.token.reason));
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    this.status = statusCode;
    this.answerHeaders = headers;
    this.state.lastStatus = statusCode;
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const { status } = this;
    // a 2xx body the caller asked not to read is not kept
    if (this.state.responseType !== 'none' || status < 200 || status > 299) this.chunks.push(chunk);
  }

  onResponseEnd(): void {
    if (!this.close()) return;
    const { chunks } = this;
    this.read(this.state, { status: this.status, headers: this.answerHeaders, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) }, this.token, this.settle);
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.finish(true, this.token.aborted ? this.token.reason : networkError(error, this.state, this.client));
  }
}

/** undici's controller takes an Error as the abort reason. */
function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason));
}
