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

describe('ModelClient', () => {
  it('retries twice, without waiting for the back-offs', async () => {
    const clock = new FakeClock();
    const recorder = new EventRecorder();
    const moduleRef = await Test.createTestingModule({
      imports: [ResilienceModule.forRoot({ clock, random: seededRandom(42) })],
      providers: [ModelClient],
    }).compile();
    await moduleRef.init(); // binds the decorated provider methods
    moduleRef.get(ResilienceEvents).subscribe(recorder.sink);

    const call = observe(moduleRef.get(ModelClient).generate('x')); // fails twice, then succeeds
    await clock.flush();
    expect(call.settled).toBe(false); // waiting in its first back-off
    await clock.advance(1_000); // every back-off within the next second has run

    expect(recorder.named('retry').map((event) => event.attempt)).toEqual([1, 2]);
    expect(call).toMatchObject({ settled: true, value: 'text about x' });
    await moduleRef.close();
  });
});
