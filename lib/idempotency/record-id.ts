import { createHash } from 'node:crypto';

/**
 * Stable id of an idempotency record: sha256 (hex) of the length-prefixed namespace, scope and key.
 * Length prefixes keep `('a:b', 'c')` and `('a', 'b:c')` apart; the fixed width keeps the unique
 * index small whatever the key length.
 * @example
 * recordIdOf('default', 'tenant-42', 'a1b2c3'); // 64 hex characters, same on every instance
 * @publicApi
 */
export function recordIdOf(namespace: string, scope: string, key: string): string {
  const hash = createHash('sha256');
  for (const part of [namespace, scope, key]) {
    hash.update(`${Buffer.byteLength(part, 'utf8')}:`);
    hash.update(part, 'utf8');
  }
  return hash.digest('hex');
}
