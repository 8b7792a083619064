import { createHash } from 'node:crypto';

const HASHED_KEY = /^sha256:[0-9a-f]{8,64}$/;

/**
 * A stable, non-reversible stand-in for an idempotency key (`sha256:` + 12 hex digits), so log
 * lines about one key can be correlated without revealing it. Keys that are already hashed that
 * way are returned unchanged.
 * @example
 * redactKey('order-42'); // 'sha256:…' (12 hex digits)
 * @publicApi
 */
export function redactKey(key: string): string {
  if (HASHED_KEY.test(key)) return key;
  return `sha256:${createHash('sha256').update(key).digest('hex').slice(0, 12)}`;
}
