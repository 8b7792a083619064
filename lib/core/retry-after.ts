// Retry-After, both ways: reading a dependency's hint off whatever error or response carries it,
// and writing the header value of a delay this side asks for.

type Loose = Record<string, unknown> | undefined;

const asObject = (value: unknown): Loose =>
  typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;

function parseRetryAfterValue(value: unknown, now: number): number | undefined {
  if (Array.isArray(value)) return parseRetryAfterValue(value[0], now);
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value * 1000 : undefined;
  if (typeof value !== 'string') return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // An HTTP-date always names a weekday or month, which rules out bare numbers parsed as years.
  if (!/[a-z]/i.test(text)) return undefined;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  const delta = at - now;
  return delta >= 0 ? delta : undefined;
}

function parseMilliseconds(value: unknown): number | undefined {
  if (Array.isArray(value)) return parseMilliseconds(value[0]);
  const number = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  return typeof number === 'number' && Number.isFinite(number) && number >= 0 ? number : undefined;
}

function headerOf(headers: unknown, name: string): unknown {
  const object = asObject(headers);
  if (!object) return undefined;
  if (typeof object.get === 'function') {
    try {
      return (object.get as (name: string) => unknown).call(headers, name) ?? undefined;
    } catch {
      return undefined;
    }
  }
  for (const key of Object.keys(object)) if (key.toLowerCase() === name) return object[key];
  return undefined;
}

function retryAfterFromHeaders(headers: unknown, now: number): number | undefined {
  const milliseconds = parseMilliseconds(headerOf(headers, 'retry-after-ms'));
  if (milliseconds !== undefined) return milliseconds;
  const value = headerOf(headers, 'retry-after');
  return value === undefined || value === null ? undefined : parseRetryAfterValue(value, now);
}

function retryAfterFromHttpException(object: Record<string, unknown>, now: number): number | undefined {
  if (typeof object.getResponse !== 'function') return undefined;
  try {
    const body = asObject((object.getResponse as () => unknown).call(object));
    return body ? parseRetryAfterValue(body.retryAfter, now) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The server's back-off hint, in ms: `error.retryAfterMs` (the library's errors), then the
 * `Retry-After` (delta-seconds or HTTP-date, RFC 9110 §10.2.3) or `retry-after-ms` header of
 * `error.headers` or `error.response.headers` (plain objects, axios headers or fetch `Headers`), then
 * `retryAfter` (seconds or HTTP-date) in a Nest `HttpException`'s response object. HTTP-dates are
 * measured from `now`, which comes from the policy clock. Invalid or past values give `undefined`.
 * @publicApi
 */
export function retryAfterMsOf(error: unknown, now: number): number | undefined {
  const object = asObject(error);
  if (!object) return undefined;
  const own = object.retryAfterMs;
  if (typeof own === 'number') return Number.isFinite(own) && own >= 0 ? own : undefined;
  return (
    retryAfterFromHeaders(object.headers, now) ??
    retryAfterFromHeaders(asObject(object.response)?.headers, now) ??
    retryAfterFromHttpException(object, now)
  );
}

/**
 * The `Retry-After` value of a delay in ms: whole seconds, rounded up, at least 1.
 * @internal
 */
export function retryAfterSeconds(ms: number): number {
  return Math.max(1, Number.isFinite(ms) ? Math.ceil(ms / 1000) : 1);
}
