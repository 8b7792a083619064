import type { StandardSchemaV1 } from '@standard-schema/spec';
import { errorBodyOf } from '../core/error-body.js';
import { UpstreamContractError, type UpstreamContractIssue } from '../core/upstream-http.error.js';
import type { CallState, RawAnswer } from './call-state.js';

/** Bytes of an error answer decoded for `UpstreamHttpError.body` (which keeps 4096 characters). */
const MAX_ERROR_BODY_BYTES = 16_384;
const MAX_CONTRACT_ISSUES = 20;

/**
 * The body of an error answer as `UpstreamHttpError.body` carries it: its first bytes, decoded
 * by its content type.
 * @internal
 */
export function errorBodyOfAnswer(answer: RawAnswer): unknown {
  return errorBodyOf(answer.body.subarray(0, MAX_ERROR_BODY_BYTES).toString('utf8'), String(answer.headers['content-type'] ?? ''));
}

/**
 * The `data` of a 2xx answer as the call's `responseType` asks: nothing, bytes, text, or JSON
 * (validated by the call's Standard Schema when it has one). Read synchronously: only a schema
 * whose validation is asynchronous makes it a promise ({@link isThenable}).
 * @throws UpstreamContractError when the body is not the JSON the call expects.
 * @internal
 */
export function readBody(state: CallState, answer: RawAnswer, client: string): unknown {
  const { body, headers, status } = answer;
  const type = String(headers['content-type'] ?? '');
  switch (state.responseType) {
    case 'none':
      return undefined;
    case 'bytes':
      // a copy: a small buffer may be a slice of Node's shared pool
      return new Uint8Array(body);
    case 'text':
      return body.toString('utf8');
    case 'auto':
      if (!/[/+]json\b/i.test(type)) return body.toString('utf8');
      return parseJson(body.toString('utf8'), status, state, client, false);
    case 'json': {
      const value = parseJson(body.toString('utf8'), status, state, client, state.schema !== undefined);
      return state.schema ? validate(state.schema, value, status, state, client) : value;
    }
  }
}

function parseJson(text: string, status: number, state: CallState, client: string, strict: boolean): unknown {
  try {
    return JSON.parse(text);
  } catch {
    if (!strict && text === '') return undefined;
    throw new UpstreamContractError(status, [{ path: '$', message: 'The body is not valid JSON.' }], {
      client,
      method: state.method,
      url: state.href,
    });
  }
}

/** Whether `value` is a promise or thenable (what an asynchronous schema validation returns). @internal */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as PromiseLike<unknown>).then === 'function';
}

function validate(schema: StandardSchemaV1, value: unknown, status: number, state: CallState, client: string): unknown {
  const result = schema['~standard'].validate(value);
  if (isThenable(result)) return Promise.resolve(result).then((settled) => validated(settled, status, state, client));
  return validated(result, status, state, client);
}

function validated(result: StandardSchemaV1.Result<unknown>, status: number, state: CallState, client: string): unknown {
  if (result.issues === undefined) return result.value;
  const issues: UpstreamContractIssue[] = result.issues.slice(0, MAX_CONTRACT_ISSUES).map((issue) => ({
    path: formatPath(issue.path),
    message: issue.message,
  }));
  throw new UpstreamContractError(status, issues, { client, method: state.method, url: state.href });
}

/** A Standard Schema issue path as `$.items[0].id`. */
function formatPath(path: StandardSchemaV1.Issue['path']): string {
  let result = '$';
  for (const segment of path ?? []) {
    const key = typeof segment === 'object' && segment !== null ? segment.key : segment;
    if (typeof key === 'number') result += `[${key}]`;
    else if (typeof key === 'string' && /^[A-Za-z_$][\w$]*$/.test(key)) result += `.${key}`;
    else result += `[${JSON.stringify(String(key))}]`;
  }
  return result;
}
