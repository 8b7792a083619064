import { describe, expect, it } from 'vitest';
import { parseIdempotencyKey, validateIdempotencyKey } from './idempotency-key.js';

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
