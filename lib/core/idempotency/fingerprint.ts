import { hash } from 'node:crypto';

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
  const method = input.method.toUpperCase();
  const url = normaliseUrl(input.url);
  const body = canonicalJsonOf(input.body, limits);
  // Length prefixes keep ('ab', 'c') and ('a', 'bc') apart. One string, one one-shot hash: the same
  // bytes (so the same fingerprints) as hashing the parts one by one, at a fraction of the cost.
  const text = `${utf8Length(input.scope)}:${input.scope}${utf8Length(method)}:${method}${utf8Length(url)}:${url}${body.bytes}:${body.json}`;
  return hash('sha256', text, 'hex');
}

/** UTF-8 length of `text` (counted, not converted). @internal */
export function utf8Length(text: string): number {
  // the parts of a request are short and mostly ASCII: counted here, without a call into the runtime
  if (text.length > SHORT_TEXT) return Buffer.byteLength(text, 'utf8');
  for (let index = 0; index < text.length; index++) {
    if (text.charCodeAt(index) > 0x7f) return Buffer.byteLength(text, 'utf8');
  }
  return text.length;
}

/** Longest text {@link utf8Length} scans itself for non-ASCII characters. */
const SHORT_TEXT = 256;

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
  return canonicalJsonOf(value, limits).json;
}

/** {@link canonicalJson} and its UTF-8 length. */
function canonicalJsonOf(value: unknown, limits: FingerprintLimits): { json: string; bytes: number } {
  if (value === undefined) return { json: '', bytes: 0 };
  // A parsed JSON body whose keys already come in order is its own canonical form: the runtime's
  // JSON.stringify writes it several times faster than the writer below (same text, checked first).
  const json = typeof value === 'object' && value !== null && isCanonicalAsIs(value, 1, limits.maxDepth) ? JSON.stringify(value) : new CanonicalWriter(limits).write(value, 1);
  // The running count is in UTF-16 units; multi-byte characters make the bytes more: checked here.
  const bytes = utf8Length(json);
  if (bytes > limits.maxBytes) throw new FingerprintLimitError('size', limits.maxBytes);
  return { json, bytes };
}

/**
 * Whether `JSON.stringify(value)` is already {@link canonicalJson}'s text: plain objects (no
 * `toJSON`, no class) whose keys come in code-unit order, arrays, strings, finite or non-finite
 * numbers, booleans and null, at most `maxDepth` deep (`depth` is `value`'s). Anything else (a
 * Date, a Map, a BigInt, keys out of order, a body too deep or circular) takes the writer, which
 * also raises the limits' errors. Members JSON drops (`undefined`, functions, symbols) are dropped
 * by both, and written `null` by both inside arrays.
 */
function isCanonicalAsIs(value: object, depth: number, maxDepth: number): boolean {
  // a toJSON() is called without arguments and its result sorted by the writer, not by JSON.stringify
  if (depth > maxDepth || typeof (value as { toJSON?: unknown }).toJSON === 'function') return false;
  const inner = depth + 1;
  if (Array.isArray(value)) {
    if (Object.getPrototypeOf(value) !== Array.prototype) return false;
    for (let index = 0; index < value.length; index++) {
      if (!isPlainMember(value[index], inner, maxDepth)) return false;
    }
    return true;
  }
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) return false;
  const record = value as Record<string, unknown>;
  let previous: string | undefined;
  for (const name in record) {
    // own enumerable string keys, in the order JSON.stringify writes them; an inherited one (none
    // on a plain object) would make the two differ, so it takes the writer too
    if (!Object.hasOwn(record, name) || (previous !== undefined && !(previous < name))) return false;
    previous = name;
    if (!isPlainMember(record[name], inner, maxDepth)) return false;
  }
  return true;
}

function isPlainMember(member: unknown, depth: number, maxDepth: number): boolean {
  if (typeof member === 'object') return member === null || isCanonicalAsIs(member, depth, maxDepth);
  return typeof member !== 'bigint';
}

/**
 * One canonical serialisation: bounded recursion, cycle detection and a running size count. Each
 * leaf counts its text and each container only its own brackets, commas and keys, so the count is
 * the output's length in UTF-16 units (never more than its UTF-8 bytes) and the write stops as soon
 * as it passes the limit.
 */
class CanonicalWriter {
  /** The containers being written, outermost first (at most `maxDepth`: a list beats a Set here). */
  private readonly ancestors: object[] = [];
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
    if (this.ancestors.includes(object)) throw new TypeError('The request body contains a circular reference and cannot be fingerprinted.');
    const toJSON = typeof (object as { toJSON?: unknown }).toJSON === 'function';
    if (!toJSON && ArrayBuffer.isView(object)) return this.leaf(JSON.stringify(Buffer.from(object.buffer, object.byteOffset, object.byteLength).toString('base64')));
    if (!toJSON && depth > this.limits.maxDepth) throw new FingerprintLimitError('depth', this.limits.maxDepth);
    this.ancestors.push(object);
    try {
      return toJSON ? this.write((object as { toJSON(): unknown }).toJSON(), depth) : this.writeContainer(object, depth + 1);
    } finally {
      this.ancestors.pop();
    }
  }

  private writeContainer(object: object, inner: number): string {
    if (Array.isArray(object)) return this.list(object, inner, false);
    if (object instanceof Map) return this.list([...object.entries()], inner, true);
    if (object instanceof Set) return this.list([...object], inner, true);
    const record = object as Record<string, unknown>;
    // the default sort compares UTF-16 code units, like `compare`, without a callback per comparison
    const names = Object.keys(record).sort();
    let json = '{';
    let members = 0;
    for (const name of names) {
      const member = record[name];
      if (member === undefined || typeof member === 'function' || typeof member === 'symbol') continue;
      if (members++ > 0) json += ',';
      json += this.leaf(`${JSON.stringify(name)}:`) + this.write(member, inner);
    }
    this.count(2 + Math.max(0, members - 1));
    return `${json}}`;
  }

  /** An array (`sorted`: a Map's entries or a Set's items, whose order carries no meaning). */
  private list(items: readonly unknown[], inner: number, sorted: boolean): string {
    const texts = new Array<string>(items.length);
    for (let index = 0; index < items.length; index++) texts[index] = this.write(items[index], inner);
    this.count(2 + Math.max(0, texts.length - 1));
    if (sorted) texts.sort();
    return `[${texts.join(',')}]`;
  }

  private leaf(text: string): string {
    this.count(text.length);
    return text;
  }

  private count(units: number): void {
    this.units += units;
    if (this.units > this.limits.maxBytes) throw new FingerprintLimitError('size', this.limits.maxBytes);
  }

}

/** Code-unit order, independent of the locale (unlike `localeCompare`). */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
