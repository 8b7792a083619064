import { Catch, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { applyProblemHeaders, ProblemDetailsException } from 'nest-resilience';

/**
 * Sends every {@link ProblemDetailsException} (the library's and the sample's own) as
 * `application/problem+json`, with its extra headers (`Retry-After`, …), on Express and Fastify.
 * Other exceptions keep Nest's default handling (terminus' 503 health body, for instance).
 */
@Catch(ProblemDetailsException)
export class ProblemDetailsFilter implements ExceptionFilter {
  constructor(private readonly adapterHost: HttpAdapterHost) {}

  catch(exception: ProblemDetailsException, host: ArgumentsHost): void {
    const response = host.switchToHttp().getResponse();
    applyProblemHeaders(response, exception);
    // A string body keeps the problem+json content type on both platforms.
    this.adapterHost.httpAdapter.reply(response, JSON.stringify(exception.problem), exception.getStatus());
  }
}
