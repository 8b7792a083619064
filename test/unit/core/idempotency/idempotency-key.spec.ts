import { describe, expect, it } from 'vitest';
import { parseIdempotencyKey, validateIdempotencyKey } from '../../../../lib/core/idempotency/idempotency-key.js';

const key = (value: string) => {
  const result = parseIdempotencyKey(value);
  return result.ok ? result.key : undefined;
};
const reason = (value: string) => {
  const result = parseIdempotencyKey(value);
  return result.ok ? undefined : result.reason;
};

describe('parseIdempotencyKey', () => {
  it('accepts an RFC 8941 string and returns its content', () => {
    expect(key('"8e03978e-40d5-43e8-bc93-6894a57f9324"')).toBe('8e03978e-40d5-43e8-bc93-6894a57f9324');
  });

  it('accepts a bare token such as an unquoted UUID or base64', () => {
    expect(key('8e03978e-40d5-43e8-bc93-6894a57f9324')).toBe('8e03978e-40d5-43e8-bc93-6894a57f9324');
    expect(key('abc+/=:x_y.z~1')).toBe('abc+/=:x_y.z~1');
  });

  // The grammar of README "Key and retention policy": one row per rule, accepted and refused.
  it.each([
    ['"8e03978e-40d5-43e8-bc93-6894a57f9324"', '8e03978e-40d5-43e8-bc93-6894a57f9324', 'sf-string (the draft form)'],
    ['8e03978e-40d5-43e8-bc93-6894a57f9324', '8e03978e-40d5-43e8-bc93-6894a57f9324', 'bare UUID starting with a digit'],
    ['01JEMX6Z3Q8W5K2R4T7Y9B1C3D', '01JEMX6Z3Q8W5K2R4T7Y9B1C3D', 'bare ULID'],
    ['YWJjZA==', 'YWJjZA==', 'bare base64 with padding'],
    ['order:42/retry', 'order:42/retry', 'bare token with : and /'],
    ['*star', '*star', 'bare token starting with *'],
    ['a%00%27', 'a%00%27', '% is a token character after the first'],
    ['"12345"', '12345', 'a number, quoted'],
    ['":YWJj:"', ':YWJj:', 'a byte-sequence look-alike, quoted'],
    ['"%00%27"', '%00%27', 'a percent-escape look-alike, quoted'],
    ['"a b@c"', 'a b@c', 'spaces and symbols, quoted'],
  ])('accepts %s → %s (%s)', (value, expected) => {
    expect(key(value)).toBe(expected);
  });

  it.each([
    ['12345', /only of digits is an RFC 8941 number/],
    ['1.5', /only of digits is an RFC 8941 number/],
    [':YWJj:', /must start with .* not `:` \(RFC 8941 reads it as a byte sequence\)/],
    ['%00%27', /must start with a letter, a digit or `\*`, not `%`/],
    ['-1', /must start with .* not `-`/],
    ['?1', /cannot contain `\?`/],
    ['abc@example', /cannot contain `@`/],
    ['a[b]', /cannot contain `\[`/],
    ['%00', /not `%`/],
    ['a\u0000b', /control character U\+0000/],
  ])('refuses %s', (value, expected) => {
    expect(reason(value)).toMatch(expected);
  });

  it('unescapes \\" and \\\\ inside a quoted key and keeps spaces', () => {
    expect(key('"a \\"quoted\\" \\\\ key"')).toBe('a "quoted" \\ key');
  });

  it('ignores surrounding spaces and tabs', () => {
    expect(key('  \t"abc"  ')).toBe('abc');
    expect(key(' abc ')).toBe('abc');
  });

  it('accepts 255 characters and refuses 256', () => {
    expect(key('a'.repeat(255))).toHaveLength(255);
    expect(reason('a'.repeat(256))).toMatch(/256 characters long; at most 255/);
    expect(reason(`"${'a'.repeat(256)}"`)).toMatch(/256 characters/);
  });

  it('refuses an empty value and an empty quoted string', () => {
    expect(reason('')).toMatch(/empty/);
    expect(reason('   ')).toMatch(/empty/);
    expect(reason('""')).toMatch(/empty/);
  });

  it('refuses control characters, inside or quoted', () => {
    expect(reason('ab\tcd')).toMatch(/control character U\+0009/);
    expect(reason('"ab\u0001cd"')).toMatch(/control character U\+0001/);
    expect(reason('ab\u007fcd')).toMatch(/control character U\+007F/);
  });

  it('refuses non-ASCII characters', () => {
    expect(reason('café')).toMatch(/non-ASCII character U\+00E9/);
    expect(reason('"ключ"')).toMatch(/non-ASCII/);
  });

  it('refuses malformed quoted strings', () => {
    expect(reason('"abc')).toMatch(/no closing/);
    expect(reason('"ab"c"')).toMatch(/followed by other characters/);
    expect(reason('"a\\bc"')).toMatch(/backslash/);
    expect(reason('abc"')).toMatch(/cannot contain `"`/);
  });

  it('refuses parameters, inner lists and several values', () => {
    expect(reason('"abc";v=1')).toMatch(/parameters are not accepted/);
    expect(reason('abc;v=1')).toMatch(/parameters are not accepted/);
    expect(reason('("a" "b")')).toMatch(/inner lists/);
    expect(reason('abc, def')).toMatch(/several values/);
    expect(reason('"abc", "def"')).toMatch(/followed by other characters/);
  });

  it('refuses spaces in a bare key (they need quoting)', () => {
    expect(reason('ab cd')).toMatch(/cannot contain spaces/);
    expect(key('"ab cd"')).toBe('ab cd');
  });
});

describe('validateIdempotencyKey', () => {
  it('checks length and printable ASCII without header parsing', () => {
    expect(validateIdempotencyKey('a b;c').ok).toBe(true);
    expect(validateIdempotencyKey('').ok).toBe(false);
    expect(validateIdempotencyKey('x'.repeat(256)).ok).toBe(false);
    expect(validateIdempotencyKey('a\nb').ok).toBe(false);
    expect(validateIdempotencyKey('ü').ok).toBe(false);
  });
});
