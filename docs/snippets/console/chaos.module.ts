import { Module } from '@nestjs/common';
import { ResilienceModule } from 'nest-resilience';

@Module({
  imports: [
    // #region forRoot
    ResilienceModule.forRoot({
      chaos: {
        enabled: process.env.CHAOS === 'on',        // off unless you say so
        seed: 42,                                    // the same faults on every run
        rules: [
          { id: 'slow-model', target: { httpClient: 'model' }, fault: { kind: 'latency', ms: 1500 }, rate: 0.5 },
        ],
      },
    }),
    // #endregion forRoot
  ],
})
export class ChaosModule {}
