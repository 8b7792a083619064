import { Controller, Get, Req } from '@nestjs/common';
import { CircuitBreaker, Fallback, Timeout } from 'nest-resilience';
import { RecommendationsCache } from './recommendations.cache.js';

@Controller('recommendations')
export class RecommendationsController {
  @Get()
  // a timeout, an open circuit or a failing dependency answers the fallback instead of an error
  @Fallback((error: unknown) => ({ items: [], degraded: true }))
  @CircuitBreaker({ key: 'recommender' })
  @Timeout({ total: 800 })
  async recommendations() {
    const response = await fetch('http://recommender.internal/top');
    return { items: (await response.json()) as string[], degraded: false };
  }

  @Get('for-me')
  // a provider class, resolved through DI: it gets the error and the handler's own arguments
  @Fallback(RecommendationsCache)
  @CircuitBreaker({ key: 'recommender' })
  async forMe(@Req() request: { headers: Record<string, string | undefined> }) {
    const response = await fetch(`http://recommender.internal/users/${request.headers['x-user-id']}`);
    return { items: (await response.json()) as string[], degraded: false };
  }
}
