import { Inject } from '@nestjs/common';

/**
 * The injection token of the HTTP client `name` (for `moduleRef.get()` or custom providers).
 * @example
 * const model = moduleRef.get<HttpClient>(getHttpClientToken('model'), { strict: false });
 * @publicApi
 */
export function getHttpClientToken(name: string): string {
  return `nest-resilience:http-client:${name}`;
}

/**
 * Injects the `HttpClient` registered as `name` by `ResilientHttpModule`.
 * @example
 * constructor(@InjectHttpClient('model') private readonly model: HttpClient) {}
 * @publicApi
 */
export function InjectHttpClient(name: string): PropertyDecorator & ParameterDecorator {
  return Inject(getHttpClientToken(name));
}
