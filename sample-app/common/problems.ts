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
