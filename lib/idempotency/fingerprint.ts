import { createHash } from 'node:crypto';

/**
 * The parts of a request that make it "the same request" for idempotency.
 * @publicApi
 */
export interface FingerprintInput {
  /** Tenant or user the key belongs to (`''` for global keys). */
  readonly scope: string;
  /** HTTP method; compared case-insensitively. */
  readonly method: string;
  /** Request URL: the concrete path, optionally followed by `?query` (the query is normalised). */
  readonly url: string;
  /** Parsed request body (`undefined` when there is none). */
  readonly body: unknown;
}

/**
 * sha256 (hex) of the length-prefixed scope, upper-case method, path with normalised query and the
 * canonical JSON of the body. Two requests get the same fingerprint exactly when a retry of one
 * may be answered with the other's response: key order in the body, query parameter order and
 * whitespace do not matter; any value, the path or the method does.
 * @example
 * requestFingerprint({ scope: '', method: 'POST', url: '/reports?b=2&a=1', body: { y: 1, x: 2 } })
 *   === requestFingerprint({ scope: '', method: 'post', url: '/reports?a=1&b=2', body: { x: 2, y: 1 } }); // true
 * @publicApi
 */
export function requestFingerprint(input: FingerprintInput): string {
  const hash = createHash('sha256');
  const parts = [input.scope, input.method.toUpperCase(), normaliseUrl(input.url), canonicalJson(input.body)];
  for (const part of parts) {
    // Length prefixes keep ('ab', 'c') and ('a', 'bc') apart.
    hash.update(`${Buffer.byteLength(part, 'utf8')}:`);
    hash.update(part, 'utf8');
  }
  return hash.digest('hex');
}

/**
 * The path unchanged, followed by the query parameters sorted by name, then value (`?` dropped when
 * there are none).
 * @internal
 */
export function normaliseUrl(url: string): string {
  const hashAt = url.indexOf('#');
  const withoutFragment = hashAt === -1 ? url : url.slice(0, hashAt);
  const queryAt = withoutFragment.indexOf('?');
  if (queryAt === -1) return withoutFragment;
  const path = withoutFragment.slice(0, queryAt);
  const entries = [...new URLSearchParams(withoutFragment.slice(queryAt + 1))];
  if (entries.length === 0) return path;
  entries.sort(([nameA, valueA], [nameB, valueB]) => compare(nameA, nameB) || compare(valueA, valueB));
  return `${path}?${new URLSearchParams(entries).toString()}`;
}

/**
 * Deterministic JSON: object keys sorted, `toJSON()` honoured (Dates become ISO strings),
 * `undefined` members dropped, Maps and Sets as sorted entry arrays, BigInts as `"<n>n"`,
 * non-finite numbers as `null`. `undefined` at the top level (no body) becomes the empty string,
 * which no JSON text equals.
 * @example
 * canonicalJson({ b: 1, a: new Date(0) }); // '{"a":"1970-01-01T00:00:00.000Z","b":1}'
 * @publicApi
 */
export function canonicalJson(value: unknown): string {
  if (value === undefined) return '';
  return write(value, new Set());
}

function write(value: unknown, ancestors: Set<object>): string {
  if (value === null || value === undefined) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      return Number.isFinite(value) ? JSON.stringify(value) : 'null';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'bigint':
      return JSON.stringify(`${value}n`);
    case 'function':
    case 'symbol':
      return 'null';
  }
  const object = value as object;
  if (ancestors.has(object)) throw new TypeError('The request body contains a circular reference and cannot be fingerprinted.');
  ancestors.add(object);
  try {
    if (typeof (object as { toJSON?: unknown }).toJSON === 'function') {
      return write((object as { toJSON(): unknown }).toJSON(), ancestors);
    }
    if (Array.isArray(object)) return `[${object.map((item) => write(item, ancestors)).join(',')}]`;
    if (object instanceof Map) return writeSorted([...object.entries()].map((entry) => write(entry, ancestors)));
    if (object instanceof Set) return writeSorted([...object].map((item) => write(item, ancestors)));
    if (ArrayBuffer.isView(object)) return JSON.stringify(Buffer.from(object.buffer, object.byteOffset, object.byteLength).toString('base64'));
    const members = Object.keys(object)
      .filter((name) => {
        const member = (object as Record<string, unknown>)[name];
        return member !== undefined && typeof member !== 'function' && typeof member !== 'symbol';
      })
      .sort(compare)
      .map((name) => `${JSON.stringify(name)}:${write((object as Record<string, unknown>)[name], ancestors)}`);
    return `{${members.join(',')}}`;
  } finally {
    ancestors.delete(object);
  }
}

function writeSorted(items: string[]): string {
  return `[${items.sort(compare).join(',')}]`;
}

/** Code-unit order, independent of the locale (unlike `localeCompare`). */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
