import { HttpException } from '@nestjs/common';
import { ProblemDetailsException } from 'nest-resilience';

// The sample's own errors use the library's problem+json exception, so every error a client sees
// from this API has the same RFC 9457 shape and a stable `code`.
const TYPE_BASE = 'https://sample-app.example/problems/';

/** 400: the body failed validation. */
export function validationProblem(messages: string[]): ProblemDetailsException {
  return new ProblemDetailsException({
    status: 400,
    code: 'validation_failed',
    title: 'Invalid request body',
    detail: messages.join('; ') || 'The request body is invalid.',
    typeBase: TYPE_BASE,
  });
}

/** 400: the body nests deeper than any request of this API. */
export function bodyTooDeepProblem(maxDepth: number): ProblemDetailsException {
  return new ProblemDetailsException({
    status: 400,
    code: 'body_too_deep',
    title: 'Request body nested too deeply',
    detail: `The request body is nested more than ${maxDepth} levels deep.`,
    typeBase: TYPE_BASE,
  });
}

/** 415: the request body is not JSON. */
export function unsupportedMediaTypeProblem(): ProblemDetailsException {
  return new ProblemDetailsException({
    status: 415,
    code: 'unsupported_media_type',
    title: 'Unsupported Media Type',
    detail: 'The content type of the request body is not supported; send application/json.',
    typeBase: TYPE_BASE,
  });
}

/** 415: the request body's charset is not UTF-8. */
export function unsupportedCharsetProblem(): ProblemDetailsException {
  return new ProblemDetailsException({
    status: 415,
    code: 'unsupported_charset',
    title: 'Unsupported Media Type',
    detail: 'The charset of the request body is not supported; send UTF-8.',
    typeBase: TYPE_BASE,
  });
}

/** 400/408/431: Node's HTTP parser refused the request before any app code ran. */
export function malformedRequestProblem(status: 400 | 408 | 431): ProblemDetailsException {
  const { code, title, detail } =
    status === 431
      ? { code: 'headers_too_large', title: 'Request Header Fields Too Large', detail: 'The request headers are larger than this server accepts.' }
      : status === 408
        ? { code: 'request_timeout', title: 'Request Timeout', detail: 'The request was not received in time.' }
        : { code: 'malformed_request', title: 'Bad Request', detail: 'The request is not valid HTTP/1.1 (its framing or a header is malformed).' };
  return new ProblemDetailsException({ status, code, title, detail, typeBase: TYPE_BASE });
}

/** 400: an HTTP/1.1 request without a Host header. */
export function hostRequiredProblem(): ProblemDetailsException {
  return new ProblemDetailsException({ status: 400, code: 'host_required', title: 'Bad Request', detail: 'An HTTP/1.1 request must carry a Host header.', typeBase: TYPE_BASE });
}

/** 401: the caller did not say which account it acts for. */
export function accountRequiredProblem(detail: string): ProblemDetailsException {
  return new ProblemDetailsException({ status: 401, code: 'account_required', title: 'Account required', detail, typeBase: TYPE_BASE });
}

/** 402: the account has no credit left. */
export function insufficientCreditsProblem(accountId: string): ProblemDetailsException {
  return new ProblemDetailsException({
    status: 402,
    code: 'insufficient_credits',
    title: 'Insufficient credits',
    detail: `Account "${accountId}" has no credits left; a report costs 1 credit.`,
    typeBase: TYPE_BASE,
  });
}

/** 404: no such resource. */
export function notFoundProblem(what: string, id: string): ProblemDetailsException {
  return new ProblemDetailsException({
    status: 404,
    code: `${what}_not_found`,
    title: 'Not found',
    detail: `No ${what} with id "${id}".`,
    typeBase: TYPE_BASE,
  });
}

/** Codes and sentences of the platforms' own request errors (body-parser `type`s, Fastify `code`s). */
const PLATFORM_ERRORS: Readonly<Record<string, { readonly code: string; readonly detail: string }>> = {
  'entity.parse.failed': { code: 'malformed_json', detail: 'The request body is not valid JSON.' },
  FST_ERR_CTP_INVALID_JSON_BODY: { code: 'malformed_json', detail: 'The request body is not valid JSON.' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { code: 'malformed_json', detail: 'The request body is empty although its content type is JSON.' },
  'entity.too.large': { code: 'body_too_large', detail: 'The request body is larger than this API accepts.' },
  FST_ERR_CTP_BODY_TOO_LARGE: { code: 'body_too_large', detail: 'The request body is larger than this API accepts.' },
  'charset.unsupported': { code: 'unsupported_charset', detail: 'The charset of the request body is not supported; send UTF-8.' },
  'encoding.unsupported': { code: 'unsupported_content_encoding', detail: 'The content encoding of the request body is not supported.' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { code: 'bad_content_length', detail: 'The Content-Length header does not match the request body.' },
  FST_ERR_BAD_URL: { code: 'bad_url', detail: 'The request URL is not validly percent-encoded.' },
};

/** Codes by status for the other HTTP errors (Nest's 404 for an unknown route, …). */
const STATUS_CODES: Readonly<Record<number, string>> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  406: 'not_acceptable',
  408: 'request_timeout',
  409: 'conflict',
  411: 'length_required',
  413: 'body_too_large',
  414: 'uri_too_long',
  415: 'unsupported_media_type',
  422: 'unprocessable_content',
  429: 'too_many_requests',
};

/**
 * The problem answering an error that is not a problem already: an `HttpException` (its status and
 * message), a platform's request error (body-parser, Fastify: a fixed sentence per kind), or
 * anything else (500 `internal_error`, saying nothing of the cause).
 */
export function problemOfHttpError(error: unknown): ProblemDetailsException {
  const fields = (typeof error === 'object' && error !== null ? error : {}) as { status?: unknown; statusCode?: unknown };
  const status = error instanceof HttpException ? error.getStatus() : typeof fields.statusCode === 'number' ? fields.statusCode : typeof fields.status === 'number' ? fields.status : 500;
  if (status < 400 || status >= 500) {
    return new ProblemDetailsException({ status: 500, code: 'internal_error', title: 'Internal error', detail: 'The server failed to process the request; the error was logged.', typeBase: TYPE_BASE });
  }
  // Nest's adapters wrap the platform's error in an HttpException and keep it as `cause`.
  const origin = (error instanceof HttpException && typeof error.cause === 'object' && error.cause !== null ? error.cause : fields) as { type?: unknown; code?: unknown };
  const platform = PLATFORM_ERRORS[String(origin.type)] ?? PLATFORM_ERRORS[String(origin.code)];
  if (platform) return new ProblemDetailsException({ status, ...platform, typeBase: TYPE_BASE });
  const detail = (error instanceof HttpException ? messageOf(error) : undefined) ?? `The request was refused with status ${status}.`;
  return new ProblemDetailsException({ status, code: STATUS_CODES[status] ?? `http_${status}`, detail, typeBase: TYPE_BASE });
}

/** The client-facing message of an HttpException (`Cannot GET /nope`, a guard's reason, …). */
function messageOf(error: HttpException): string | undefined {
  const body = error.getResponse();
  if (typeof body === 'string') return body;
  const message = (body as { message?: unknown }).message;
  return typeof message === 'string' ? message : Array.isArray(message) ? message.join('; ') : undefined;
}
