import { Catch, HttpException, Logger, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import {
  applyProblemHeaders,
  isProblemDetailsException,
  isResilienceError,
  isUpstreamHttpError,
  ProblemDetailsException,
  ResilienceErrorMapper,
} from 'nest-resilience';
import { problemOfHttpError } from './problems.js';

/**
 * Makes every error answer of the sample API `application/problem+json` with a stable `code`, on
 * Express and Fastify: its own and the library's problems as they are; the library's errors through
 * the library's {@link ResilienceErrorMapper}; Nest's and the platforms' HTTP errors (unknown
 * route, malformed JSON, body too large, unsupported media type or charset, bad URL encoding) by
 * status; anything else as a 500 that says nothing of the cause, which goes to the log.
 * Nest runs global filters for the platform's own errors and unknown routes too.
 *
 * The one exception is terminus' health answer: `/health` keeps its documented JSON body.
 */
@Catch()
export class ProblemDetailsFilter implements ExceptionFilter {
  private readonly logger = new Logger('ProblemDetailsFilter');

  constructor(
    private readonly adapterHost: HttpAdapterHost,
    private readonly mapper: ResilienceErrorMapper,
  ) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const response = host.switchToHttp().getResponse();
    const { httpAdapter } = this.adapterHost;
    if (exception instanceof HttpException && isHealthReport(exception.getResponse())) {
      httpAdapter.reply(response, exception.getResponse(), exception.getStatus());
      return;
    }
    const problem = this.problemOf(exception);
    if (problem.getStatus() >= 500 && !isProblemDetailsException(exception)) {
      this.logger.error(`Unhandled error answered ${problem.getStatus()}`, exception instanceof Error ? exception.stack : String(exception));
    }
    applyProblemHeaders(response, problem);
    // A string body keeps the problem+json content type on both platforms.
    httpAdapter.reply(response, JSON.stringify(problem.problem), problem.getStatus());
  }

  private problemOf(exception: unknown): ProblemDetailsException {
    if (isProblemDetailsException(exception)) return exception;
    if (isResilienceError(exception) || isUpstreamHttpError(exception)) {
      const mapped = this.mapper.map(exception);
      if (isProblemDetailsException(mapped)) return mapped;
    }
    return problemOfHttpError(exception);
  }
}

/** terminus' body: `{ status, info, error, details }`. */
function isHealthReport(body: unknown): boolean {
  return typeof body === 'object' && body !== null && 'details' in body && 'status' in body && 'info' in body;
}
