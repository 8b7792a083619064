import { Controller, Injectable, Module, Post, Body } from '@nestjs/common';
import { BehaviorSubject, skip } from 'rxjs';
import { ResilienceModule, ResilienceService, type ReloadableResilienceOptions } from 'nest-resilience';

/** Where the app's resilience settings live: a config service, a feature-flag client, a file watcher. */
@Injectable()
export class ResilienceSettings {
  readonly changes = new BehaviorSubject<ReloadableResilienceOptions>({ retry: { maxAttempts: 3 } });
}

@Module({ providers: [ResilienceSettings], exports: [ResilienceSettings] })
export class SettingsModule {}

@Controller('admin/resilience')
export class ResilienceAdminController {
  constructor(private readonly resilience: ResilienceService) {}

  // an invalid body is refused with the start-up error text; the options in force stay
  @Post()
  reload(@Body() options: ReloadableResilienceOptions) {
    return this.resilience.reload(options);
  }
}

@Module({
  imports: [
    ResilienceModule.forRootAsync({
      imports: [SettingsModule],
      inject: [ResilienceSettings],
      // start with the current value; every later one is a reload
      useFactory: (settings: ResilienceSettings) => ({ ...settings.changes.value, reloads: settings.changes.pipe(skip(1)) }),
    }),
  ],
  controllers: [ResilienceAdminController],
})
export class AppModule {}
