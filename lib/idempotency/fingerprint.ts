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
 * Bounds on the body a fingerprint reads, so a hostile body costs a bounded amount of stack, time
 * and memory.
 * @publicApi
 */
export interface FingerprintLimits {
  /** Deepest nesting of objects and arrays read (the body itself is depth 1). @default 64 */
  readonly maxDepth: number;
  /** Largest canonical JSON of the body, in UTF-8 bytes. @default 1_048_576 (1 MiB) */
  readonly maxBytes: number;
}

/**
 * The limits used when none are given: deeper than any real API payload, and Fastify's default
 * body limit.
 * @publicApi
 */
export const DEFAULT_FINGERPRINT_LIMITS: FingerprintLimits = { maxDepth: 64, maxBytes: 1_048_576 };

/**
 * The body is beyond a {@link FingerprintLimits} bound: `limit` says which. Thrown by
 * {@link canonicalJson} and {@link requestFingerprint}; the idempotency layer answers it with
 * 400 `idempotency_body_too_deep` or 413 `idempotency_body_too_large` before touching the store.
 * @publicApi
 */
export class FingerprintLimitError extends Error {
  constructor(
    /** Which bound was crossed. */
    readonly limit: 'depth' | 'size',
    /** The bound's value (levels or bytes). */
    readonly max: number,
  ) {
    super(
      limit === 'depth'
        ? `The request body is nested more than ${max} levels deep, so it was not fingerprinted; raise maxBodyDepth on the route if such bodies are legitimate.`
        : `The request body's canonical JSON is larger than ${max} bytes, so it was not fingerprinted; raise maxBodyBytes on the route if such bodies are legitimate.`,
    );
    this.name = 'FingerprintLimitError';
  }
}

/**
 * sha256 (hex) of the length-prefixed scope, upper-case method, path with normalised query and the
 * canonical JSON of the body. Two requests get the same fingerprint exactly when a retry of one
 * may be answered with the other's response: key order in the body, query parameter order and
 * whitespace do not matter; any value, the path or the method does. Throws a
 * {@link FingerprintLimitError} for a body beyond `limits`.
 * @example
 * requestFingerprint({ scope: '', method: 'POST', url: '/reports?b=2&a=1', body: { y: 1, x: 2 } })
 *   === requestFingerprint({ scope: '', method: 'post', url: '/reports?a=1&b=2', body: { x: 2, y: 1 } }); // true
 * @publicApi
 */
export function requestFingerprint(input: FingerprintInput, limits: FingerprintLimits = DEFAULT_FINGERPRINT_LIMITS): string {
  const hash = createHash('sha256');
  const parts = [input.scope, input.method.toUpperCase(), normaliseUrl(input.url), canonicalJson(input.body, limits)];
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
 * which no JSON text equals. Recursion is bounded by `limits.maxDepth` and the output by
 * `limits.maxBytes` ({@link FingerprintLimitError} beyond either).
 * @example
 * canonicalJson({ b: 1, a: new Date(0) }); // '{"a":"1970-01-01T00:00:00.000Z","b":1}'
 * @publicApi
 */
export function canonicalJson(value: unknown, limits: FingerprintLimits = DEFAULT_FINGERPRINT_LIMITS): string {
  if (value === undefined) return '';
  const writer = new CanonicalWriter(limits);
  const json = writer.write(value, 1);
  // The running count is in UTF-16 units; multi-byte characters make the bytes more: checked here.
  if (Buffer.byteLength(json, 'utf8') > limits.maxBytes) throw new FingerprintLimitError('size', limits.maxBytes);
  return json;
}

/**
 * One canonical serialisation: bounded recursion, cycle detection and a running size count. Each
 * leaf counts its text and each container only its own brackets, commas and keys, so the count is
 * the output's length in UTF-16 units (never more than its UTF-8 bytes) and the write stops as soon
 * as it passes the limit.
 */
class CanonicalWriter {
  private readonly ancestors = new Set<object>();
  private units = 0;

  constructor(private readonly limits: FingerprintLimits) {}

  write(value: unknown, depth: number): string {
    if (value === null || value === undefined) return this.leaf('null');
    switch (typeof value) {
      case 'string':
        return this.leaf(JSON.stringify(value));
      case 'number':
        return this.leaf(Number.isFinite(value) ? JSON.stringify(value) : 'null');
      case 'boolean':
        return this.leaf(value ? 'true' : 'false');
      case 'bigint':
        return this.leaf(JSON.stringify(`${value}n`));
      case 'function':
      case 'symbol':
        return this.leaf('null');
    }
    const object = value as object;
    if (this.ancestors.has(object)) throw new TypeError('The request body contains a circular reference and cannot be fingerprinted.');
    if (typeof (object as { toJSON?: unknown }).toJSON === 'function') {
      return this.guarded(object, () => this.write((object as { toJSON(): unknown }).toJSON(), depth));
    }
    if (ArrayBuffer.isView(object)) return this.leaf(JSON.stringify(Buffer.from(object.buffer, object.byteOffset, object.byteLength).toString('base64')));
    if (depth > this.limits.maxDepth) throw new FingerprintLimitError('depth', this.limits.maxDepth);
    return this.guarded(object, () => this.writeContainer(object, depth + 1));
  }

  private writeContainer(object: object, inner: number): string {
    if (Array.isArray(object)) return `[${this.items(object.map((item) => this.write(item, inner))).join(',')}]`;
    if (object instanceof Map) return writeSorted(this.items([...object.entries()].map((entry) => this.write(entry, inner))));
    if (object instanceof Set) return writeSorted(this.items([...object].map((item) => this.write(item, inner))));
    const members = Object.keys(object)
      .filter((name) => {
        const member = (object as Record<string, unknown>)[name];
        return member !== undefined && typeof member !== 'function' && typeof member !== 'symbol';
      })
      .sort(compare)
      .map((name) => `${this.leaf(`${JSON.stringify(name)}:`)}${this.write((object as Record<string, unknown>)[name], inner)}`);
    return `{${this.items(members).join(',')}}`;
  }

  /** Counts a container's brackets and commas. */
  private items(texts: string[]): string[] {
    this.count(2 + Math.max(0, texts.length - 1));
    return texts;
  }

  private leaf(text: string): string {
    this.count(text.length);
    return text;
  }

  private count(units: number): void {
    this.units += units;
    if (this.units > this.limits.maxBytes) throw new FingerprintLimitError('size', this.limits.maxBytes);
  }

  private guarded(object: object, write: () => string): string {
    this.ancestors.add(object);
    try {
      return write();
    } finally {
      this.ancestors.delete(object);
    }
  }
}

function writeSorted(items: string[]): string {
  return `[${items.sort(compare).join(',')}]`;
}

/** Code-unit order, independent of the locale (unlike `localeCompare`). */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
