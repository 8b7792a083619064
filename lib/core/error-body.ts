/** Longest error body kept, in characters. */
const MAX_BODY_CHARS = 4096;

/**
 * A dependency's error body for logs: parsed JSON when `contentType` says so and it parses, else the
 * text; truncated to 4096 characters, `undefined` when empty.
 * @internal
 */
export function errorBodyOf(text: string, contentType: string | null | undefined): unknown {
  const truncated = text.slice(0, MAX_BODY_CHARS);
  if (truncated === '') return undefined;
  if (contentType?.includes('json')) {
    try {
      return JSON.parse(truncated);
    } catch {
      return truncated;
    }
  }
  return truncated;
}
