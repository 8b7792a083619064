/**
 * Result of {@link parseIdempotencyKey}: the key, or why the value was refused.
 * @publicApi
 */
export type IdempotencyKeyParseResult =
  | {
      /** Valid. */
      readonly ok: true;
      /** The key (a string item's content, unquoted). */
      readonly key: string;
    }
  | {
      /** Refused. */
      readonly ok: false;
      /** Which rule of the grammar the value broke. */
      readonly reason: string;
    };

/**
 * Longest key accepted, in characters (Stripe's limit and the storage column width).
 * @publicApi
 */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;

const DQUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * What a bare (unquoted) key may contain after its first character: RFC 8941 token characters
 * (`tchar`, `:` and `/`) plus `=`, so base64 padding needs no quotes.
 */
const BARE_KEY_CHARACTER = /^[!#$%&'*+\-.^_`|~0-9A-Za-z:/=]$/;

/** How a bare key may start: an RFC 8941 token's first character, or a digit (raw UUIDs). */
const BARE_KEY_START = /^[A-Za-z0-9*]$/;

/** A bare key accepted as it is: a start character, then key characters, 1–255 in all. */
const WELL_FORMED_BARE_KEY = new RegExp(`^[A-Za-z0-9*][!#$%&'*+\\-.^_\`|~0-9A-Za-z:/=]{0,${MAX_IDEMPOTENCY_KEY_LENGTH - 1}}$`);

/** A bare value an RFC 8941 parser reads as an Integer or a Decimal, not as a key. */
const BARE_NUMBER = /^[0-9]+(\.[0-9]+)?$/;

/**
 * Parses the value of an `Idempotency-Key` header. Accepted, with the key 1–255 characters long:
 * - an RFC 8941 sf-string, as the IETF draft specifies: `"…"` holding printable ASCII
 *   (0x20–0x7E) with `\"` and `\\` escapes;
 * - leniently, a bare key: an RFC 8941 token (`[A-Za-z*]` then `tchar`, `:` or `/`), extended so
 *   raw UUIDs and base64 work unquoted: it may start with a digit and contain `=`. A bare value
 *   that RFC 8941 reads as another type is refused: a number (`12345`, `1.5`), a byte sequence
 *   (`:YWJj:`), a boolean (`?1`), or anything starting with another symbol (`%00`, `-1`).
 *
 * Parameters (`;a=1`), inner lists, several values, control characters and non-ASCII are refused.
 * @example
 * parseIdempotencyKey('"8e03978e-40d5-43e8-bc93-6894a57f9324"'); // { ok: true, key: '8e03978e-…' }
 * parseIdempotencyKey('8e03978e-40d5-43e8-bc93-6894a57f9324'); // { ok: true, key: '8e03978e-…' }
 * parseIdempotencyKey('12345'); // { ok: false, reason: 'a bare key made only of digits … quote it …' }
 * @publicApi
 */
export function parseIdempotencyKey(value: string): IdempotencyKeyParseResult {
  // the common case, a well-formed bare key (a UUID, say), in one test; everything else is parsed
  // step by step below, which also says what is wrong
  if (WELL_FORMED_BARE_KEY.test(value) && !BARE_NUMBER.test(value)) return { ok: true, key: value };
  const text = trimOws(value);
  if (text.length === 0) return refuse('the value is empty');
  const nonAscii = firstInvalidCharacter(text);
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
  const invalid = firstInvalidCharacter(key);
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
    if (!BARE_KEY_CHARACTER.test(character)) {
      return refuse(`a bare key cannot contain \`${character}\`; quote it as an RFC 8941 string`);
    }
  }
  const first = text[0]!;
  if (!BARE_KEY_START.test(first)) {
    const type = first === ':' ? ' (RFC 8941 reads it as a byte sequence)' : '';
    return refuse(`a bare key must start with a letter, a digit or \`*\`, not \`${first}\`${type}; quote it as an RFC 8941 string`);
  }
  if (BARE_NUMBER.test(text)) {
    return refuse('a bare key made only of digits is an RFC 8941 number, not a string; quote it as an RFC 8941 string, or better send a UUID');
  }
  return { ok: true, key: text };
}

/** Describes the first character outside 0x20–0x7E, if any. */
function firstInvalidCharacter(text: string): string | undefined {
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
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
