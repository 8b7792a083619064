import { hash } from 'node:crypto';
import { utf8Length } from './fingerprint.js';

/**
 * Stable id of an idempotency record: sha256 (hex) of the length-prefixed namespace, scope and key.
 * Length prefixes keep `('a:b', 'c')` and `('a', 'b:c')` apart; the fixed width keeps the unique
 * index small whatever the key length.
 * @example
 * recordIdOf('default', 'tenant-42', 'a1b2c3'); // 64 hex characters, same on every instance
 * @publicApi
 */
export function recordIdOf(namespace: string, scope: string, key: string): string {
  // one string, one one-shot hash: the same bytes (so the same ids) as hashing the parts one by one
  return hash('sha256', `${utf8Length(namespace)}:${namespace}${utf8Length(scope)}:${scope}${utf8Length(key)}:${key}`, 'hex');
}

