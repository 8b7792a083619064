// The configuration guide's factory class (docs/snippets/configuration/resilience-config.ts) builds
// the module options through createResilienceOptions(), as the guide says.
import { Test } from '@nestjs/testing';
import { RESOLVED_RESILIENCE_OPTIONS, type ResolvedResilienceOptions } from 'nest-resilience';
import { afterEach, describe, expect, it } from 'vitest';
import { AppModule, ResilienceConfig } from '../../docs/snippets/configuration/resilience-config.js';

describe('forRootAsync({ useClass }) (configuration guide)', () => {
  const deadline = process.env.REQUEST_DEADLINE_MS;
  afterEach(() => {
    if (deadline === undefined) delete process.env.REQUEST_DEADLINE_MS;
    else process.env.REQUEST_DEADLINE_MS = deadline;
  });

  it("builds the module options with the factory class's createResilienceOptions()", async () => {
    process.env.REQUEST_DEADLINE_MS = '12000';
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    try {
      const options = moduleRef.get<ResolvedResilienceOptions>(RESOLVED_RESILIENCE_OPTIONS);
      expect(options.timeout).toEqual(expect.objectContaining({ status: 504, total: 12_000 }));
      expect(moduleRef.get(ResilienceConfig)).toBeInstanceOf(ResilienceConfig);
    } finally {
      await moduleRef.close();
    }
  });
});
