import { Module } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { ResilienceModule } from 'nest-resilience';
import { ResilientHttpModule } from 'nest-resilience/http';

@Module({
  imports: [
    ResilienceModule.forRoot(),
    ResilientHttpModule.registerAsync({
      clients: [
        {
          name: 'payments',
          imports: [ConfigModule],
          inject: [ConfigService],
          useFactory: (config: ConfigService) => ({
            baseUrl: config.getOrThrow<string>('PAYMENTS_URL'),
            headers: { authorization: `Bearer ${config.getOrThrow<string>('PAYMENTS_TOKEN')}` },
            retry: { maxAttempts: 2 },
            idempotencyKeys: 'explicit', // only calls that pass idempotencyKey carry one (and may be retried as POST)
          }),
        },
      ],
    }),
  ],
})
export class AppModule {}
