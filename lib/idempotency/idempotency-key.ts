/**
 * Result of {@link parseIdempotencyKey}: the key, or why the value was refused.
 * @publicApi
 */
export type IdempotencyKeyParseResult =
  | { readonly ok: true; readonly key: string }
  | { readonly ok: false; readonly reason: string };

/**
 * Longest key accepted, in characters (Stripe's limit and the storage column width).
 * @publicApi
 */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;

const DQUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Characters with a structural meaning in RFC 8941 that a bare (unquoted) key must not contain:
 * a quote starts a string, parentheses an inner list, a comma separates list members (and joins
 * repeated header lines), a semicolon starts parameters, a backslash escapes.
 */
const STRUCTURAL = new Set(['"', '(', ')', ',', ';', '\\']);

/**
 * Parses the value of an `Idempotency-Key` header: an RFC 8941 sf-string (`"…"`, with `\"` and
 * `\\` escapes) or, leniently, a bare token such as an unquoted UUID. The key must be 1–255
 * printable ASCII characters (0x20–0x7E; no space in a bare token). Parameters (`;a=1`), inner
 * lists, several values, control characters, non-ASCII and malformed quoted strings are refused.
 * @example
 * parseIdempotencyKey('"8e03978e-40d5-43e8-bc93-6894a57f9324"'); // { ok: true, key: '8e03978e-…' }
 * parseIdempotencyKey('abc;x=1'); // { ok: false, reason: 'parameters are not accepted …' }
 * @publicApi
 */
export function parseIdempotencyKey(value: string): IdempotencyKeyParseResult {
  const text = trimOws(value);
  if (text.length === 0) return refuse('the value is empty');
  const nonAscii = firstInvalidCharacter(text, true);
  if (nonAscii) return refuse(nonAscii);
  const key = text.charCodeAt(0) === DQUOTE ? parseQuoted(text) : parseBare(text);
  if (!key.ok) return key;
  return validateIdempotencyKey(key.key);
}

/**
 * Checks a key obtained without header parsing (from a `keyResolver`): 1–255 printable ASCII
 * characters (0x20–0x7E).
 * @publicApi
 */
export function validateIdempotencyKey(key: string): IdempotencyKeyParseResult {
  if (key.length === 0) return refuse('the key is empty');
  if (key.length > MAX_IDEMPOTENCY_KEY_LENGTH) {
    return refuse(`the key is ${key.length} characters long; at most ${MAX_IDEMPOTENCY_KEY_LENGTH} are accepted`);
  }
  const invalid = firstInvalidCharacter(key, false);
  if (invalid) return refuse(invalid);
  return { ok: true, key };
}

function parseQuoted(text: string): IdempotencyKeyParseResult {
  let key = '';
  for (let index = 1; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code === BACKSLASH) {
      const next = text.charCodeAt(index + 1);
      if (next !== DQUOTE && next !== BACKSLASH) {
        return refuse('a backslash in a quoted key may only escape `"` or `\\`');
      }
      key += text[index + 1];
      index++;
    } else if (code === DQUOTE) {
      const rest = text.slice(index + 1);
      if (rest.length === 0) return { ok: true, key };
      if (rest.startsWith(';')) return refuse('parameters are not accepted after the key; send only the quoted key');
      return refuse('the quoted key is followed by other characters; send exactly one quoted string');
    } else {
      key += text[index];
    }
  }
  return refuse('the quoted key has no closing `"`');
}

function parseBare(text: string): IdempotencyKeyParseResult {
  if (text.startsWith('(')) return refuse('inner lists are not accepted; send one key');
  for (const character of text) {
    if (character === ';') return refuse('parameters are not accepted after the key; send only the key');
    if (character === ',') return refuse('the header holds several values; send exactly one key');
    if (character === ' ') return refuse('a bare key cannot contain spaces; quote it as an RFC 8941 string');
    if (STRUCTURAL.has(character)) {
      return refuse(`a bare key cannot contain \`${character}\`; quote it as an RFC 8941 string`);
    }
  }
  return { ok: true, key: text };
}

/** Describes the first character outside 0x20–0x7E (tabs allowed when `allowTab`), if any. */
function firstInvalidCharacter(text: string, allowTab: boolean): string | undefined {
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code === 0x09 && allowTab) continue;
    if (code < 0x20 || code === 0x7f) {
      return `the key contains the control character U+${hex(code)}; only printable ASCII is accepted`;
    }
    if (code > 0x7e) return `the key contains the non-ASCII character U+${hex(code)}; only printable ASCII is accepted`;
  }
  return undefined;
}

/** RFC 8941 parsing discards leading and trailing spaces; HTTP discards surrounding tabs too. */
function trimOws(value: string): string {
  return value.replace(/^[ \t]+|[ \t]+$/g, '');
}

function hex(code: number): string {
  return code.toString(16).toUpperCase().padStart(4, '0');
}

function refuse(reason: string): IdempotencyKeyParseResult {
  return { ok: false, reason };
}
