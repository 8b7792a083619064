import 'reflect-metadata';
import { Injectable, ServiceUnavailableException } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { ResilienceEvents, ResilienceModule, Retryable } from 'nest-resilience';
import { EventRecorder, FakeClock, observe, seededRandom } from 'nest-resilience/testing';
import { describe, expect, it } from 'vitest';

@Injectable()
class ModelClient {
  calls = 0;

  @Retryable()
  async generate(topic: string): Promise<string> {
    this.calls++;
    if (this.calls <= 2) throw new ServiceUnavailableException('model overloaded');
    return `text about ${topic}`;
  }
}

// The "Testing your app" example of the README, as written there.
describe('testing a provider’s retries with the fake clock (README example)', () => {
  it('runs every backoff without waiting and records the retry events', async () => {
    const clock = new FakeClock();
    const recorder = new EventRecorder();
    const moduleRef = await Test.createTestingModule({
      imports: [ResilienceModule.forRoot({ clock, random: seededRandom(42) })],
      providers: [ModelClient],
    }).compile();
    await moduleRef.init();
    moduleRef.get(ResilienceEvents).subscribe(recorder.sink);

    const call = observe(moduleRef.get(ModelClient).generate('x'));
    await clock.flush();
    expect(call.settled).toBe(false); // waiting in its first backoff
    await clock.advance(1_000);

    expect(recorder.named('retry').map((event) => event.attempt)).toEqual([1, 2]);
    expect(call).toMatchObject({ settled: true, value: 'text about x' });
    expect(moduleRef.get(ModelClient).calls).toBe(3);
    await moduleRef.close();
  });
});
