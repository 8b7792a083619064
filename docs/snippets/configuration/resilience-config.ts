import { Injectable, Module } from '@nestjs/common';
import { ResilienceModule, type ResilienceModuleOptions, type ResilienceOptionsFactory } from 'nest-resilience';

@Injectable()
export class ResilienceConfig implements ResilienceOptionsFactory {
  // the method useClass and useExisting call: createResilienceOptions()
  createResilienceOptions(): ResilienceModuleOptions {
    return { timeout: { status: 504, total: Number(process.env.REQUEST_DEADLINE_MS ?? 30_000) } };
  }
}

@Module({ imports: [ResilienceModule.forRootAsync({ useClass: ResilienceConfig })] })
export class AppModule {}
