import { describe, expect, it } from 'vitest';
import { isResilienceConfigError } from '../../../../lib/core/errors.js';
import { resolveIdempotencyOptions } from '../../../../lib/core/idempotency/idempotency-options.interface.js';

describe('resolveIdempotencyOptions', () => {
  it('applies the documented defaults', () => {
    const resolved = resolveIdempotencyOptions(undefined, undefined, undefined);
    expect(resolved).toMatchObject({
      header: 'idempotency-key',
      headerName: 'Idempotency-Key',
      required: true,
      ttl: 86_400_000,
      lease: 60_000,
      maxStoredBodyBytes: 1_048_576,
      transactional: false,
      failOpen: false,
      namespace: 'default',
      logKeys: false,
    });
    expect(resolved.storeIf(499)).toBe(true);
    expect(resolved.storeIf(500)).toBe(false);
    expect([...resolved.replayHeaders].sort()).toEqual(['content-language', 'content-location', 'content-type', 'etag', 'last-modified', 'location']);
  });

  it('lets route options override class options, which override module options', () => {
    const resolved = resolveIdempotencyOptions({ lease: 1_000, ttl: 5_000, required: false }, { lease: 3_000 }, { lease: 2_000, ttl: 4_000 });
    expect(resolved.lease).toBe(3_000);
    expect(resolved.ttl).toBe(4_000);
    expect(resolved.required).toBe(false);
  });

  it('does not let an undefined route field hide a module value', () => {
    expect(resolveIdempotencyOptions({ lease: 1_000 }, { lease: undefined }, undefined).lease).toBe(1_000);
  });

  it('adds replayHeaders to the allow-list, lower-cased', () => {
    expect(resolveIdempotencyOptions(undefined, { replayHeaders: ['X-Report-Id'] }, undefined).replayHeaders.has('x-report-id')).toBe(true);
  });

  it.each([
    [{ replayHeaders: ['Set-Cookie'] }, /Set-Cookie.*can never be replayed/],
    [{ lease: 0 }, /lease .* must be a positive number/],
    [{ ttl: -1 }, /ttl .* must be a positive number/],
    [{ header: 'Bad Header' }, /not a valid HTTP header name/],
    [{ transactional: true, failOpen: true }, /both transactional and failOpen/],
  ])('refuses %o with a config error naming the fix', (options, message) => {
    let error: unknown;
    try {
      resolveIdempotencyOptions(undefined, options, undefined, 'Reports.create');
    } catch (caught) {
      error = caught;
    }
    expect(isResilienceConfigError(error)).toBe(true);
    expect((error as Error).message).toMatch(message);
  });
});
