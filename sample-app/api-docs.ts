import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { ResilienceSwagger } from 'nest-resilience/swagger';

/**
 * Serves the OpenAPI document of the sample app on `/docs-json` and Swagger UI on `/docs`.
 * `ResilienceSwagger.createDocument` adds what the library does to each decorated route: the
 * `Idempotency-Key` header of `POST /reports`, `Idempotent-Replayed`, and its problem responses.
 * The document is built on the first request, once every module has started.
 *
 * On Fastify, Swagger UI needs `@fastify/static`, which the sample app does not install: there it
 * serves the JSON document only.
 */
export function serveApiDocs(app: INestApplication, { ui }: { ui: boolean }): void {
  const config = new DocumentBuilder()
    .setTitle('Reports API (nest-resilience sample app)')
    .setDescription('Idempotent report creation, with timeouts, retries and a circuit breaker around a slow model service.')
    .setVersion('1.0')
    .addApiKey({ type: 'apiKey', in: 'header', name: 'X-Account-Id' }, 'account')
    .addSecurityRequirements('account')
    .build();
  SwaggerModule.setup('docs', app, () => ResilienceSwagger.createDocument(app, config), { ui, raw: ['json'] });
}
