// The README's `forRootAsync({ useClass })` example (section "Configuration"): readme.spec.ts checks
// that the README shows the region below verbatim, and readme.spec.ts starts a module with it.
import { Injectable, Module } from '@nestjs/common';
// #region readme
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
// #endregion
