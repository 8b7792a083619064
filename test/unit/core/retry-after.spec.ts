import { describe, expect, it } from 'vitest';
import { retryAfterSeconds } from '../../../lib/core/retry-after.js';

describe('retryAfterSeconds', () => {
  it('rounds up to whole seconds, at least 1', () => {
    expect([retryAfterSeconds(0), retryAfterSeconds(1), retryAfterSeconds(1_000), retryAfterSeconds(1_001), retryAfterSeconds(Infinity)]).toEqual([1, 1, 1, 2, 1]);
  });
});
