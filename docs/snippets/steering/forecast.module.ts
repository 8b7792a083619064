import { Controller, Get, Injectable, Module, Param } from '@nestjs/common';
import { CircuitBreaker, Fallback, ResilienceModule } from 'nest-resilience';
import { HttpClient, InjectHttpClient, ResilientHttpModule } from 'nest-resilience/http';

@Injectable()
export class Forecasts {
  constructor(@InjectHttpClient('weather') private readonly weather: HttpClient) {}

  // the provider's own GETs: the last good answer per URL for 5 minutes (`stale.ageMs` tells)
  async today(city: string): Promise<unknown> {
    const { data, stale } = await this.weather.get(`/forecast/${encodeURIComponent(city)}`);
    return stale === undefined ? data : { ...(data as object), staleForMs: stale.ageMs };
  }
}

@Controller('forecast')
export class ForecastController {
  constructor(private readonly forecasts: Forecasts) {}

  // a route: the last good body per city for 10 minutes, answered with `Resilience-Stale: <age s>`
  @Get(':city')
  @CircuitBreaker()
  @Fallback({ lastGood: { ttl: 600_000, maxEntries: 5_000, key: (city: string) => city.toLowerCase() } })
  today(@Param('city') city: string) {
    return this.forecasts.today(city);
  }
}

@Module({
  imports: [
    ResilienceModule.forRoot(),
    ResilientHttpModule.register({ clients: { weather: { baseUrl: 'https://weather.example', lastGood: { ttl: 300_000 } } } }),
  ],
  controllers: [ForecastController],
  providers: [Forecasts],
})
export class ForecastModule {}
