import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import type { Cancellation } from '../core/cancellation.js';
import { once, type Settle } from '../core/step.js';
import { networkError } from './call-errors.js';
import type { CallState, RawAnswer } from './call-state.js';

/**
 * Sends one request through `dispatcher.dispatch()` with a handler that buffers the answer, and
 * settles with the {@link RawAnswer} or the failure. It is cancelled through the controller undici
 * hands over, so a request costs no `AbortSignal`, no listener on one and no body stream
 * (measured: `undici.request({ signal })` keeps 0.75–0.88 of a plain request, a handler-driven
 * dispatch is faster than either; BENCHMARKS.md). A token aborted before undici starts the request
 * settles the call at once, and the request is aborted as soon as undici starts it.
 * @internal
 */
export function dispatchRequest(dispatcher: Dispatcher, client: string, state: CallState, token: Cancellation, headers: Record<string, string>, settle: Settle): void {
  // a token that is already aborted never calls its listeners: nothing may be sent
  if (token.aborted) {
    settle(true, token.reason);
    return;
  }
  const chunks: Buffer[] = [];
  let controller: Dispatcher.DispatchController | undefined;
  let status = 0;
  let answerHeaders: IncomingHttpHeaders = {};
  const finish: Settle = once((failed: boolean, outcome: unknown) => {
    unsubscribe();
    settle(failed, outcome);
  });
  const unsubscribe = token.onAbort((reason) => {
    controller?.abort(asError(reason));
    finish(true, reason);
  });
  try {
    dispatcher.dispatch(
      { origin: state.origin, path: state.href.slice(state.origin.length) || '/', method: state.method, headers, body: state.body ?? null },
      {
        onRequestStart: (started) => {
          controller = started;
          // aborted before undici started it: the call already settled (the listener above ran)
          if (token.aborted) started.abort(asError(token.reason));
        },
        onResponseStart: (_controller, statusCode, responseHeaders) => {
          status = statusCode;
          answerHeaders = responseHeaders;
          state.lastStatus = statusCode;
        },
        onResponseData: (_controller, chunk) => {
          // a 2xx body the caller asked not to read is not kept
          if (state.responseType !== 'none' || status < 200 || status > 299) chunks.push(chunk);
        },
        onResponseEnd: () => finish(false, { status, headers: answerHeaders, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) } satisfies RawAnswer),
        onResponseError: (_controller, error) => finish(true, token.aborted ? token.reason : networkError(error, state, client)),
      },
    );
  } catch (error) {
    finish(true, networkError(error, state, client));
  }
}

/** undici's controller takes an Error as the abort reason. */
function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason));
}
