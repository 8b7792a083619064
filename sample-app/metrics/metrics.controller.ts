import { Controller, Get, Req, Res } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { registerMetrics } from './telemetry.js';

/** Express passes Node's own objects; Fastify wraps them (`raw`) and must be told not to answer. */
interface PlatformRequest {
  raw?: IncomingMessage;
}
interface PlatformResponse {
  raw?: ServerResponse;
  hijack?: () => void;
}

/** `GET /metrics`: the OpenTelemetry metrics (the library's `resilience_*` and `idempotency_*` included) in Prometheus text format. */
@Controller('metrics')
export class MetricsController {
  private readonly exporter = registerMetrics();

  @Get()
  metrics(@Req() request: PlatformRequest, @Res() response: PlatformResponse): void {
    response.hijack?.();
    this.exporter.getMetricsRequestHandler(
      request.raw ?? (request as unknown as IncomingMessage),
      response.raw ?? (response as unknown as ServerResponse),
    );
  }
}
