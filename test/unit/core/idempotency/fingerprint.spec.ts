import { describe, expect, it } from 'vitest';
import { canonicalJson, FingerprintLimitError, normaliseUrl, requestFingerprint } from '../../../../lib/core/idempotency/fingerprint.js';
import { recordIdOf } from '../../../../lib/core/idempotency/record-id.js';

const base = { scope: 'tenant-1', method: 'POST', url: '/reports', body: { title: 'Q3', pages: 3 } };

describe('canonicalJson', () => {
  it('sorts object keys at every depth', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null } })).toBe('{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}');
  });

  it('renders Dates through toJSON and drops undefined members', () => {
    expect(canonicalJson({ at: new Date(0), skip: undefined })).toBe('{"at":"1970-01-01T00:00:00.000Z"}');
  });

  it('is stable for Maps, Sets, BigInts and non-finite numbers', () => {
    expect(canonicalJson(new Map([['b', 2], ['a', 1]]))).toBe(canonicalJson(new Map([['a', 1], ['b', 2]])));
    expect(canonicalJson(new Set([2, 1]))).toBe('[1,2]');
    expect(canonicalJson(10n)).toBe('"10n"');
    expect(canonicalJson([NaN, Infinity])).toBe('[null,null]');
  });

  it('writes a body whose keys already come in order as it writes the same body in any other order', () => {
    // in order, a plain body is written by JSON.stringify; reversed, by the canonical writer
    const reversed = (value: unknown): unknown => {
      if (Array.isArray(value)) return value.map(reversed);
      if (typeof value !== 'object' || value === null || Object.getPrototypeOf(value) !== Object.prototype) return value;
      const entries = Object.entries(value).reverse();
      return Object.fromEntries(entries.map(([name, member]) => [name, reversed(member)]));
    };
    const bodies: unknown[] = [
      { item: 'book', qty: 1 },
      { a: [1, 'two', null, true, { b: -0, c: NaN, d: Infinity }], e: { f: { g: 'é✓"\\\n' } } },
      { a: undefined, b: () => 1, c: Symbol('s'), d: [undefined, () => 1, Symbol('t')], e: 1 },
      { '10': 1, '9': 2, A: 3, a: 4, é: 5 },
      { a: new Date(0), b: new Map([['y', 1]]), c: new Set([2, 1]), d: 10n, e: Buffer.from('hi') },
      { a: { toJSON: () => ({ z: 1, y: 2 }) }, b: 2 },
      [{ b: 1, a: 2 }, [[{ d: 1, c: 2 }]]],
    ];
    for (const body of bodies) expect(canonicalJson(body)).toBe(canonicalJson(reversed(body)));
    const noPrototype = Object.assign(Object.create(null) as object, { a: 1, b: { c: 2 } });
    expect(canonicalJson(noPrototype)).toBe('{"a":1,"b":{"c":2}}');
    expect(canonicalJson({ a: 1, b: { c: [2, 3] } })).toBe('{"a":1,"b":{"c":[2,3]}}');
  });

  it('tells "no body" apart from every JSON body', () => {
    expect(canonicalJson(undefined)).toBe('');
    expect(canonicalJson(null)).toBe('null');
    expect(canonicalJson({})).toBe('{}');
  });

  it('bounds the depth it reads, without overflowing the stack however deep the body is', () => {
    const nest = (depth: number): unknown => (depth === 0 ? 1 : [nest(depth - 1)]);
    const limits = { maxDepth: 5, maxBytes: 1_000 };
    expect(canonicalJson(nest(5), limits)).toBe('[[[[[1]]]]]');
    expect(() => canonicalJson(nest(6), limits)).toThrow(FingerprintLimitError);
    let deep: unknown = 1;
    for (let level = 0; level < 100_000; level++) deep = { a: deep };
    const error = (() => {
      try {
        canonicalJson(deep);
      } catch (thrown) {
        return thrown;
      }
    })();
    expect(error).toBeInstanceOf(FingerprintLimitError);
    expect(error).toMatchObject({ limit: 'depth', max: 64 });
  });

  it('bounds the size it writes, in UTF-8 bytes', () => {
    // '{"a":"ééé"}': 11 characters, 14 bytes
    expect(canonicalJson({ a: 'ééé' }, { maxDepth: 64, maxBytes: 14 })).toBe('{"a":"ééé"}');
    expect(() => canonicalJson({ a: 'ééé' }, { maxDepth: 64, maxBytes: 13 })).toThrow(expect.objectContaining({ limit: 'size', max: 13 }));
    // nesting does not count a body twice: a 600 KB body ten levels deep is within 1 MiB, and the limit is exact
    let nested: unknown = { text: 'x'.repeat(600_000), list: [1, 'two', { three: 3 }], map: new Map([['k', 1]]) };
    for (let level = 0; level < 10; level++) nested = { level, nested };
    const json = canonicalJson(nested);
    expect(json.length).toBeGreaterThan(600_000);
    expect(canonicalJson(nested, { maxDepth: 64, maxBytes: json.length })).toBe(json);
    expect(() => canonicalJson(nested, { maxDepth: 64, maxBytes: json.length - 1 })).toThrow(FingerprintLimitError);
    // a huge body is refused before its text is built
    const huge = Array.from({ length: 200_000 }, (_, index) => ({ index, text: 'some words' }));
    expect(() => requestFingerprint({ ...base, body: huge }, { maxDepth: 64, maxBytes: 1_000 })).toThrow(FingerprintLimitError);
  });

  it('refuses circular bodies with a clear error', () => {
    const body: Record<string, unknown> = {};
    body.self = body;
    expect(() => canonicalJson(body)).toThrow(/circular reference/);
  });
});

describe('normaliseUrl', () => {
  it('sorts query parameters by name then value and drops an empty query', () => {
    expect(normaliseUrl('/r?b=2&a=1&a=0')).toBe('/r?a=0&a=1&b=2');
    expect(normaliseUrl('/r?')).toBe('/r');
    expect(normaliseUrl('/r#frag')).toBe('/r');
  });
});

describe('requestFingerprint', () => {
  it('is a sha256 hex digest', () => {
    expect(requestFingerprint(base)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('ignores body key order, query order and method case', () => {
    const a = requestFingerprint({ ...base, url: '/reports?x=1&y=2', body: { title: 'Q3', pages: 3 } });
    const b = requestFingerprint({ ...base, method: 'post', url: '/reports?y=2&x=1', body: { pages: 3, title: 'Q3' } });
    expect(a).toBe(b);
  });

  it('changes with the scope, the method, the path, the query and any body value', () => {
    const reference = requestFingerprint(base);
    expect(requestFingerprint({ ...base, scope: 'tenant-2' })).not.toBe(reference);
    expect(requestFingerprint({ ...base, method: 'PUT' })).not.toBe(reference);
    expect(requestFingerprint({ ...base, url: '/reports/1' })).not.toBe(reference);
    expect(requestFingerprint({ ...base, url: '/reports?dry=1' })).not.toBe(reference);
    expect(requestFingerprint({ ...base, body: { title: 'Q3', pages: 4 } })).not.toBe(reference);
    expect(requestFingerprint({ ...base, body: undefined })).not.toBe(requestFingerprint({ ...base, body: {} }));
  });

  it('length-prefixes the parts so they cannot run into each other', () => {
    expect(requestFingerprint({ ...base, scope: 'ab', url: 'c' })).not.toBe(requestFingerprint({ ...base, scope: 'a', url: 'bc' }));
  });

  it('keeps the fingerprints of earlier releases (records they stored still match their retries)', () => {
    expect(requestFingerprint({ scope: '', method: 'post', url: '/orders', body: { item: 'book', qty: 1 } })).toBe(
      'a863bb9599b67baf1450dc7db08ce9c1153e1459b5bdddeff6918dcc8a90d4ad',
    );
    const everyKind = { z: [3, { y: new Date(0), x: 'é✓' }], m: new Map([['b', 1], ['a', 2]]), s: new Set([3, 1]), buf: Buffer.from('hi'), u: undefined, f: () => 1, big: 10n, n: NaN };
    expect(requestFingerprint({ scope: 'ü-user', method: 'POST', url: '/r?b=2&a=1', body: everyKind })).toBe(
      'ac4f56c9bf96b27b11ab6ef6a99c8a6068b0782db0ea40c6c3da9dfc609f9b5d',
    );
    expect(requestFingerprint({ scope: '', method: 'PUT', url: '/x', body: [[], {}, null, true, 'a"b', { é: 1, e: 2, E: 3, '10': 4, '9': 5 }] })).toBe(
      'de2e7be124eb3fb2668ba36396c7e66b55a0f7ef853908c988a73521436f0f69',
    );
  });

  it('keeps the record ids of earlier releases (the stores look records up by them)', () => {
    expect(recordIdOf('default', 'tenant-ü', 'a1b2c3')).toBe('4d6b925d258289b84fb7f4a6f17b1eaebb6f310e98a9b1c097446f9e06ed8963');
  });
});
