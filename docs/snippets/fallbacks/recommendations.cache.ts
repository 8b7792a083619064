import { Injectable } from '@nestjs/common';
import type { FallbackProvider } from 'nest-resilience';

@Injectable()
export class RecommendationsCache implements FallbackProvider<{ items: string[]; degraded: true }> {
  private readonly lastKnown = new Map<string, string[]>();

  fallback(error: unknown, request: { headers: Record<string, string | undefined> }) {
    return { items: this.lastKnown.get(request.headers['x-user-id'] ?? '') ?? [], degraded: true as const };
  }
}
