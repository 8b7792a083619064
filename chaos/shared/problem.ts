// The one check of an error answer, used by every scenario and by the fast subset in `npm test`:
// RFC 9457 problem+json with a stable `code`.

/** Stable codes are snake_case identifiers (`idempotency_key_invalid`, `validation_failed`, …). */
const STABLE_CODE = /^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$/;

/** What an error answer turned out to be. */
export type ProblemVerdict =
  | { readonly ok: true; readonly code: string }
  | { readonly ok: false; readonly reason: string };

/**
 * Checks that an answer is `application/problem+json` whose body is an object with a snake_case
 * `code`, a `title`, a `type` and a `status` equal to the HTTP status.
 */
export function checkProblem(status: number, contentType: string | null | undefined, body: string): ProblemVerdict {
  if (!isProblemContentType(contentType)) {
    return { ok: false, reason: `content-type ${contentType ? `"${contentType}"` : 'missing'}${body ? `, body ${JSON.stringify(body.slice(0, 80))}` : ', empty body'}` };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return { ok: false, reason: `problem+json body is not JSON: ${JSON.stringify(body.slice(0, 80))}` };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return { ok: false, reason: 'problem+json body is not an object' };
  const problem = parsed as Record<string, unknown>;
  if (typeof problem.code !== 'string' || !STABLE_CODE.test(problem.code)) return { ok: false, reason: `code ${JSON.stringify(problem.code)} is not a snake_case identifier` };
  if (problem.status !== status) return { ok: false, reason: `body status ${JSON.stringify(problem.status)} differs from HTTP ${status}` };
  if (typeof problem.title !== 'string' || typeof problem.type !== 'string') return { ok: false, reason: 'title or type missing' };
  return { ok: true, code: problem.code };
}

/** Whether a Content-Type is `application/problem+json` (parameters such as charset allowed). */
export function isProblemContentType(contentType: string | null | undefined): boolean {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase() === 'application/problem+json';
}

/** Whether a `Retry-After` header holds delta-seconds (≥ 0) or an HTTP-date. */
export function isRetryAfter(value: string | null | undefined): boolean {
  if (!value) return false;
  return /^\d+$/.test(value.trim()) || !Number.isNaN(Date.parse(value));
}
