// Generated requests for the sample app (fast-check): Idempotency-Key, headers (content type,
// lying or odd Content-Length, odd values), body shape, depth and size (3000-deep JSON, invalid
// JSON, huge bodies, control characters, non-UTF-8) and method. The chaos suite and the fast
// subset in `npm test` draw their cases from here.
import fc from 'fast-check';
import type { RawRequest } from '../shared/raw-http.js';

/** A body: a label that says what it is, and its bytes (made on demand: some are megabytes). */
export interface FuzzBody {
  readonly label: string;
  bytes(): Buffer;
}

/** How the body is framed on the wire. */
export type Framing =
  /** Content-Length equal to the body. */
  | 'exact'
  /** Transfer-Encoding: chunked. */
  | 'chunked'
  /** Content-Length larger than the body; the client half-closes after a pause. */
  | 'declared-longer'
  /** Content-Length shorter than the body; the rest follows once the server answered. */
  | 'declared-shorter'
  /** A Content-Length that is not a number. */
  | 'invalid-length'
  /** Two different Content-Length headers. */
  | 'conflicting-length';

/** One generated request. */
export interface FuzzCase {
  readonly method: string;
  readonly target: string;
  /** `X-Account-Id` (the sample app's stand-in for authentication); absent when undefined. */
  readonly account: string | undefined;
  /** `Idempotency-Key` as sent (latin1); absent when undefined. */
  readonly key: string | undefined;
  /** `Content-Type`; absent when undefined. */
  readonly contentType: string | undefined;
  readonly body: FuzzBody;
  readonly framing: Framing;
  /** Other headers with odd values (`Expect`, `Content-Encoding`, …). */
  readonly extraHeaders: ReadonlyArray<readonly [string, string]>;
  /** Leave out the Host header (required by HTTP/1.1). */
  readonly omitHost: boolean;
}

/** Keys shared by many cases, so the same key comes back with the same or another request (replay, 422). */
export const SHARED_KEYS = ['fuzz-shared-1', 'fuzz-shared-2', 'fuzz-shared-3', '"fuzz-shared-4"'] as const;

const body = (label: string, make: () => Buffer | string): FuzzBody => ({
  label,
  bytes: () => {
    const made = make();
    return typeof made === 'string' ? Buffer.from(made, 'utf8') : made;
  },
});

const json = (value: unknown): string => JSON.stringify(value);

/** `usual`, `usualWeight` times out of `usualWeight + oddWeight`; else one of `odd`. */
function mostly<T>(usual: T, usualWeight: number, odd: readonly T[], oddWeight: number): fc.Arbitrary<T> {
  return fc.oneof({ arbitrary: fc.constant(usual), weight: usualWeight }, { arbitrary: fc.constantFrom(...odd), weight: oddWeight });
}

/** Strings for `topic`: ordinary, empty, too long, control characters, lone surrogates, any code unit. */
const topicArb: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.constantFrom('tides', 'a report', 'x'), weight: 4 },
  { arbitrary: fc.constantFrom('', ' ', 'a\u0000b', '\u0000', 'line\nbreak', '\u001f\u007f', 'x'.repeat(200), 'x'.repeat(201), '\ud800', '\uffff', 'é', '🙂'), weight: 3 },
  { arbitrary: fc.string({ maxLength: 40 }), weight: 2 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 40 }), weight: 2 },
);

/** JSON nested `depth` levels deep: arrays or objects, under `topic`, beside it, or as the whole body. */
function nested(depth: number, shape: 'array' | 'object', where: 'field' | 'topic' | 'root'): string {
  const open = shape === 'array' ? '[' : '{"a":';
  const close = shape === 'array' ? ']' : '}';
  const inner = shape === 'array' ? '' : '1';
  const deep = `${open.repeat(depth)}${inner}${close.repeat(depth)}`;
  if (where === 'root') return deep;
  if (where === 'topic') return `{"topic":${deep}}`;
  return `{"topic":"deep","nested":${deep}}`;
}

const deepArb: fc.Arbitrary<FuzzBody> = fc
  .tuple(fc.constantFrom(8, 64, 512, 1_000, 2_999, 3_000, 3_001, 10_000, 40_000), fc.constantFrom('array' as const, 'object' as const), fc.constantFrom('field' as const, 'topic' as const, 'root' as const))
  .map(([depth, shape, where]) => body(`${depth}-deep ${shape} JSON (${where})`, () => nested(depth, shape, where)));

const invalidJsonArb: fc.Arbitrary<FuzzBody> = fc.oneof(
  fc
    .constantFrom('{', '{"topic":', '{"topic":"tides"', "{'topic':'tides'}", '{"topic":"tides"}}', 'nul', '{"topic":"\\x"}', '[', '\u0000', '{"topic":"tides"}garbage', '{"topic":tides}', '{,}', '"')
    .map((text) => body(`invalid JSON ${json(text)}`, () => text)),
  fc.integer({ min: 1, max: 16 }).map((cut) => body(`valid JSON cut after ${cut} bytes`, () => json({ topic: 'tides' }).slice(0, cut))),
);

const wrongShapeArb: fc.Arbitrary<FuzzBody> = fc.oneof(
  fc.constantFrom<unknown>([], 'tides', 42, null, true, [{ topic: 'tides' }], {}).map((value) => body(`JSON ${json(value)}`, () => json(value))),
  fc.constantFrom<unknown>(42, null, true, ['tides'], { nested: 'tides' }, -1.5e308).map((value) => body(`topic ${json(value)}`, () => json({ topic: value }))),
  fc
    .dictionary(fc.string({ minLength: 1, maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { minKeys: 1, maxKeys: 3 })
    .map((extra) => body(`topic plus fields ${json(Object.keys(extra))}`, () => json({ topic: 'tides', ...extra }))),
  fc.constantFrom('__proto__', 'constructor').map((name) => body(`topic plus "${name}"`, () => `{"topic":"tides","${name}":{"polluted":true}}`)),
);

const hugeArb: fc.Arbitrary<FuzzBody> = fc
  .tuple(fc.constantFrom(100_000, 1_048_577, 5 * 1_048_576), fc.constantFrom('topic' as const, 'field' as const))
  .map(([size, where]) =>
    body(`${size}-byte JSON (long ${where})`, () => {
      const filler = 'a'.repeat(size - (where === 'topic' ? 12 : 28));
      return where === 'topic' ? `{"topic":"${filler}"}` : `{"topic":"x","padding":"${filler}"}`;
    }),
  );

const nonUtf8Arb: fc.Arbitrary<FuzzBody> = fc
  .uint8Array({ minLength: 1, maxLength: 12 })
  .map((bytes) => Uint8Array.from(bytes, (byte) => 0x80 | byte))
  .map((high) => body(`non-UTF-8 topic (${Buffer.from(high).toString('hex')})`, () => Buffer.concat([Buffer.from('{"topic":"'), high, Buffer.from('"}')])));

const otherBodyArb: fc.Arbitrary<FuzzBody> = fc.oneof(
  fc.constant(body('empty body', () => Buffer.alloc(0))),
  fc.constant(body('form topic=tides', () => 'topic=tides')),
  fc.uint8Array({ maxLength: 64 }).map((bytes) => body(`random bytes (${bytes.length})`, () => Buffer.from(bytes))),
  fc.constant(body('UTF-16LE JSON', () => Buffer.from(json({ topic: 'tides' }), 'utf16le'))),
  fc.constant(body('UTF-8 BOM + JSON', () => `\ufeff${json({ topic: 'tides' })}`)),
);

/** Every kind of body, weighted toward ones the route could accept. */
export const bodyArb: fc.Arbitrary<FuzzBody> = fc.oneof(
  { arbitrary: topicArb.map((topic) => body(`topic ${json(topic)}`, () => json({ topic }))), weight: 10 },
  { arbitrary: deepArb, weight: 3 },
  { arbitrary: invalidJsonArb, weight: 2 },
  { arbitrary: wrongShapeArb, weight: 2 },
  { arbitrary: hugeArb, weight: 1 },
  { arbitrary: nonUtf8Arb, weight: 1 },
  { arbitrary: otherBodyArb, weight: 1 },
);

/** Header-safe printable ASCII (no CR/LF: those would split the request, which is not this test). */
const visibleAscii = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((code) => String.fromCharCode(code)), maxLength: 40 });

/** Key values with a control character other than HTAB, which Node's HTTP parser refuses. */
const KEYS_WITH_CONTROL_CHARACTERS = ['nul\u0000byte', 'bell\u0007'];

/** Idempotency-Key values: valid, shared, and every edge of the grammar. */
function keyArbitrary(malformedHttp: boolean): fc.Arbitrary<string | undefined> {
  const edges = [
    '',
    ' ',
    '""',
    '"unterminated',
    ':YWJj:',
    '12345',
    '%00%27',
    '?1',
    '@1700000000',
    'a'.repeat(255),
    'a'.repeat(256),
    `"${'a'.repeat(255)}"`,
    'key;param=1',
    'a, b',
    '"a", "b"',
    '"esc\\"aped"',
    'é',
    '\u00ff\u00fe',
    'tab\there',
    ...(malformedHttp ? KEYS_WITH_CONTROL_CHARACTERS : []),
  ];
  return fc.oneof(
    { arbitrary: fc.uuid(), weight: 10 },
    { arbitrary: fc.uuid().map((id) => `"${id}"`), weight: 2 },
    { arbitrary: fc.constantFrom(...SHARED_KEYS), weight: 3 },
    { arbitrary: fc.constant(undefined), weight: 1 },
    { arbitrary: fc.constantFrom(...edges), weight: 3 },
    { arbitrary: visibleAscii, weight: 2 },
  );
}

const contentTypeArb = mostly<string | undefined>(
  'application/json',
  12,
  [
    undefined,
    'application/json; charset=utf-8',
    'APPLICATION/JSON',
    'application/json; charset=latin1',
    'application/json; charset=utf-16',
    'application/json; charset="utf-8"',
    'application/json;;;',
    'application/problem+json',
    'application/vnd.api+json',
    'text/plain',
    'text/html; charset=utf-8',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x',
    'application/xml',
    '*/*',
    'json',
    '',
  ],
  3,
);

const methodArb = mostly('POST', 15, ['GET', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', 'PROPFIND', 'TRACE'], 3);

const targetArb = mostly(
  '/reports',
  20,
  [
    '/reports/',
    '/reports?x=1',
    '/reports?topic=a&topic=b',
    '/reports/00000000-0000-4000-8000-000000000000',
    '/reports/%ZZ',
    '/reports/..%2f..%2fetc',
    `/reports/${'a'.repeat(2_000)}`,
    '/preview?topic=tides',
    '/preview',
    '/preview?topic=%00',
    '/',
    '/health/live',
    '/nope',
    '/REPORTS',
  ],
  3,
);

const accountArb = mostly<string | undefined>('acme', 20, [undefined, 'globex', '', 'ACME', 'a'.repeat(65), 'acme, globex', 'acme\u00e9', 'nobody'], 2);

/** Framings Node's HTTP server accepts, so the request reaches the app. */
const WELL_FORMED_FRAMINGS = ['chunked', 'declared-shorter'] as const;
/** Framings Node's HTTP server refuses itself (a 400 before any app code runs). */
const MALFORMED_FRAMINGS = ['declared-longer', 'invalid-length', 'conflicting-length'] as const;

function framingArbitrary(malformedHttp: boolean): fc.Arbitrary<Framing> {
  const odd: Framing[] = [...WELL_FORMED_FRAMINGS, ...(malformedHttp ? MALFORMED_FRAMINGS : [])];
  return mostly<Framing>('exact', 20, odd, odd.length);
}

/** Odd extra headers; `Transfer-Encoding: identity` is one Node's HTTP parser refuses. */
function extraHeadersArbitrary(malformedHttp: boolean): fc.Arbitrary<Array<readonly [string, string]>> {
  const headers: Array<readonly [string, string]> = [
    ['Expect', '100-continue'],
    ['Content-Encoding', 'gzip'],
    ['Content-Encoding', 'identity'],
    ['Accept', 'text/html'],
    ['Accept-Charset', 'latin1'],
    ['X-Request-Id', 'x'.repeat(300)],
    ['X-Demo-Hold-Ms', '999999'],
    ...(malformedHttp ? [['Transfer-Encoding', 'identity'] as const] : []),
  ];
  return fc.oneof(
    { arbitrary: fc.constant([] as Array<readonly [string, string]>), weight: 8 },
    { arbitrary: fc.subarray(headers, { minLength: 1, maxLength: 2 }), weight: 1 },
  );
}

/** What {@link fuzzCaseArbitrary} generates. */
export interface FuzzOptions {
  /**
   * Also generate malformed HTTP/1.1 messages (a Content-Length that lies upward, is not a number
   * or is sent twice; control characters in a header value; no Host), which Node's HTTP server
   * answers itself before any app code runs. @default true
   */
  readonly malformedHttp?: boolean;
}

/** One generated request. */
export function fuzzCaseArbitrary({ malformedHttp = true }: FuzzOptions = {}): fc.Arbitrary<FuzzCase> {
  return fc.record({
    method: methodArb,
    target: targetArb,
    account: accountArb,
    key: keyArbitrary(malformedHttp),
    contentType: contentTypeArb,
    body: bodyArb,
    framing: framingArbitrary(malformedHttp),
    extraHeaders: extraHeadersArbitrary(malformedHttp),
    omitHost: malformedHttp ? mostly(false, 40, [true], 1) : fc.constant(false),
  });
}

/**
 * The cases of one run: `count` draws from `seed` (the same seed gives the same cases), always
 * preceded by the fixed cases the issue names (a 3000-deep body on the idempotent route, a NUL
 * character in `topic`), so a short run covers them too.
 */
export function fuzzCases(count: number, seed: number, options: FuzzOptions = {}): FuzzCase[] {
  const pinned: FuzzCase[] = [
    pinnedCase(body('3000-deep array JSON (field)', () => nested(3_000, 'array', 'field'))),
    pinnedCase(body('3000-deep object JSON (root)', () => nested(3_000, 'object', 'root'))),
    pinnedCase(body('topic "a\\u0000b"', () => json({ topic: 'a\u0000b' }))),
  ];
  return [...pinned, ...fc.sample(fuzzCaseArbitrary(options), { numRuns: Math.max(0, count - pinned.length), seed })];
}

function pinnedCase(fuzzBody: FuzzBody): FuzzCase {
  return {
    method: 'POST',
    target: '/reports',
    account: 'acme',
    key: `pinned-${fuzzBody.label.replace(/[^a-z0-9]+/gi, '-')}`,
    contentType: 'application/json',
    body: fuzzBody,
    framing: 'exact',
    extraHeaders: [],
    omitHost: false,
  };
}

/** The bytes of a case: headers in a fixed order, `Connection: close`, the framing it asks for. */
export function toRawRequest(fuzzCase: FuzzCase): RawRequest {
  const payload = fuzzCase.body.bytes();
  const headers: Array<readonly [string, string]> = [];
  if (!fuzzCase.omitHost) headers.push(['Host', '127.0.0.1']);
  headers.push(['Connection', 'close']);
  if (fuzzCase.account !== undefined) headers.push(['X-Account-Id', fuzzCase.account]);
  if (fuzzCase.key !== undefined) headers.push(['Idempotency-Key', fuzzCase.key]);
  if (fuzzCase.contentType !== undefined) headers.push(['Content-Type', fuzzCase.contentType]);
  headers.push(...fuzzCase.extraHeaders);
  switch (fuzzCase.framing) {
    case 'exact':
      headers.push(['Content-Length', String(payload.length)]);
      return { method: fuzzCase.method, target: fuzzCase.target, headers, body: payload };
    case 'chunked': {
      headers.push(['Transfer-Encoding', 'chunked']);
      const chunks = payload.length ? [Buffer.from(`${payload.length.toString(16)}\r\n`), payload, Buffer.from('\r\n')] : [];
      return { method: fuzzCase.method, target: fuzzCase.target, headers, body: Buffer.concat([...chunks, Buffer.from('0\r\n\r\n')]) };
    }
    case 'declared-longer':
      headers.push(['Content-Length', String(payload.length + 10)]);
      return { method: fuzzCase.method, target: fuzzCase.target, headers, body: payload, halfClose: true };
    case 'declared-shorter': {
      const declared = Math.floor(payload.length / 2);
      headers.push(['Content-Length', String(declared)]);
      return { method: fuzzCase.method, target: fuzzCase.target, headers, body: payload.subarray(0, declared), trailing: payload.subarray(declared) };
    }
    case 'invalid-length':
      headers.push(['Content-Length', payload.length ? `${payload.length}abc` : '-1']);
      return { method: fuzzCase.method, target: fuzzCase.target, headers, body: payload };
    case 'conflicting-length':
      headers.push(['Content-Length', String(payload.length)], ['Content-Length', String(payload.length + 1)]);
      return { method: fuzzCase.method, target: fuzzCase.target, headers, body: payload };
  }
}

/** One line that identifies a case in a report. */
export function describeCase(fuzzCase: FuzzCase): string {
  const show = (value: string | undefined) => (value === undefined ? '-' : JSON.stringify(value.length > 40 ? `${value.slice(0, 37)}...` : value));
  const extras = fuzzCase.extraHeaders.map(([name, value]) => `${name}: ${value.length > 20 ? `${value.slice(0, 17)}...` : value}`).join(', ');
  const target = fuzzCase.target.length > 60 ? `${fuzzCase.target.slice(0, 57)}...` : fuzzCase.target;
  return `${fuzzCase.method} ${target} key=${show(fuzzCase.key)} account=${show(fuzzCase.account)} type=${show(fuzzCase.contentType)} framing=${fuzzCase.framing}${fuzzCase.omitHost ? ' no-Host' : ''}${extras ? ` [${extras}]` : ''} body=${fuzzCase.body.label}`;
}
