import type { INestApplication } from '@nestjs/common';
import {
  DECORATORS,
  SwaggerModule,
  type HeaderObject,
  type OpenAPIObject,
  type OperationObject,
  type ParameterObject,
  type ReferenceObject,
  type ResponseObject,
  type SchemaObject,
  type SwaggerDocumentOptions,
} from '@nestjs/swagger';
import { PROBLEM_JSON_CONTENT_TYPE } from '../http/problem-details.js';
import type { ResolvedResilienceOptions } from '../interfaces/resilience-module-options.interface.js';
import { RESOLVED_RESILIENCE_OPTIONS } from '../resilience.constants.js';
import { describeDecoratedRoutes, type RouteAnswers, type RouteProblem } from './route-answers.js';

/** The vendor extension that carries a route's id from its handler into its operations, while the document is built. */
const ROUTE_MARKER = 'x-nest-resilience-route';

/**
 * Name of the shared problem+json schema in `components.schemas`.
 * @publicApi
 */
export const PROBLEM_DETAILS_SCHEMA = 'ProblemDetails';

/** The RFC 9457 body of every problem the library answers with. */
const problemDetailsSchema = (typeBase: string): SchemaObject => ({
  type: 'object',
  description: 'An RFC 9457 problem: every error answered by nest-resilience has this body, with Content-Type application/problem+json.',
  required: ['type', 'title', 'status', 'detail', 'code'],
  properties: {
    type: { type: 'string', format: 'uri', description: 'URI of the problem type: the problem type base followed by the code.', example: `${typeBase}timeout` },
    title: { type: 'string', description: 'Short summary of the problem type.', example: 'Request timed out' },
    status: { type: 'integer', minimum: 400, maximum: 599, description: 'The HTTP status code.', example: 503 },
    detail: { type: 'string', description: 'Explanation of this occurrence, written for clients.' },
    code: { type: 'string', description: 'Stable machine-readable code (timeout, circuit_open, idempotency_key_reused, …).', example: 'timeout' },
  },
});

const HEADERS: Record<string, HeaderObject> = {
  'Retry-After': { description: 'Seconds to wait before retrying (RFC 9110).', schema: { type: 'integer', minimum: 0 } },
  'Idempotent-Replayed': { description: '`true` when this is the stored response of an earlier request with the same key, replayed without running the handler again.', schema: { type: 'string', enum: ['true'] } },
};

/**
 * OpenAPI documentation of the library's part of each decorated route, for `@nestjs/swagger`
 * (an optional peer: only this entry point, `nest-resilience/swagger`, imports it).
 *
 * `ResilienceSwagger.createDocument()` is `SwaggerModule.createDocument()` plus, on every route
 * that carries a resilience decorator or `@Idempotent()`:
 * - the `Idempotency-Key` request header (required or optional as the route is configured);
 * - `Idempotent-Replayed` and the echoed key on its successful responses;
 * - one response per problem status it can answer (400, 409, 413, 422, 500, 502, 503/504/408, 429),
 *   each `application/problem+json` with the shared `components.schemas.ProblemDetails`, its codes
 *   as examples and `Retry-After` where the answer carries one.
 *
 * Swagger itself finds the routes (global prefix, versions and `RouterModule` paths included), and
 * your own `@ApiResponse()` / `@ApiHeader()` for the same status or header win. Nothing is left
 * on your classes: the metadata that links handlers to operations is removed once the document is built.
 * @example
 * const config = new DocumentBuilder().setTitle('Reports API').build();
 * SwaggerModule.setup('docs', app, () => ResilienceSwagger.createDocument(app, config));
 * @publicApi
 */
export class ResilienceSwagger {
  /**
   * Builds the application's OpenAPI document with `SwaggerModule.createDocument(app, config, options)`
   * and documents what the library adds to each decorated route. Call it once the application is
   * created (`NestFactory.create`); it needs `ResilienceModule` in the application.
   */
  static createDocument(app: INestApplication, config: Omit<OpenAPIObject, 'paths'>, options?: SwaggerDocumentOptions): OpenAPIObject {
    const routes = describeDecoratedRoutes(app);
    const byId = new Map<string, RouteAnswers>();
    const restore: Array<() => void> = [];
    for (const [handler, answers] of routes) {
      const id = String(byId.size);
      byId.set(id, answers);
      const previous: unknown = Reflect.getOwnMetadata(DECORATORS.API_EXTENSION, handler);
      Reflect.defineMetadata(DECORATORS.API_EXTENSION, { ...(previous as object | undefined), [ROUTE_MARKER]: id }, handler);
      restore.push(() => (previous === undefined ? Reflect.deleteMetadata(DECORATORS.API_EXTENSION, handler) : Reflect.defineMetadata(DECORATORS.API_EXTENSION, previous, handler)));
    }
    let document: OpenAPIObject;
    try {
      document = SwaggerModule.createDocument(app, config, options);
    } finally {
      for (const undo of restore) undo();
    }
    const typeBase = app.get<ResolvedResilienceOptions>(RESOLVED_RESILIENCE_OPTIONS, { strict: false }).problemTypeBase;
    let documented = false;
    for (const item of Object.values(document.paths ?? {})) {
      for (const operation of Object.values(item) as unknown[]) {
        if (!isMarked(operation)) continue;
        const answers = byId.get(String(operation[ROUTE_MARKER]));
        delete operation[ROUTE_MARKER];
        if (answers === undefined) continue;
        documentOperation(operation, answers, typeBase);
        documented = true;
      }
    }
    if (documented) {
      const components = (document.components ??= {});
      const schemas = (components.schemas ??= {});
      // a schema of that name the application declared itself is kept
      schemas[PROBLEM_DETAILS_SCHEMA] ??= problemDetailsSchema(typeBase);
      components.headers = { ...HEADERS, ...components.headers };
    }
    return document;
  }
}

function isMarked(operation: unknown): operation is OperationObject & Record<string, unknown> {
  return typeof operation === 'object' && operation !== null && ROUTE_MARKER in operation;
}

/** Adds the key header, the success headers and the problem responses of one route to its operation. */
function documentOperation(operation: OperationObject, answers: RouteAnswers, typeBase: string): void {
  const { idempotencyKey } = answers;
  const parameters = (operation.parameters ??= []);
  if (idempotencyKey !== undefined && !parameters.some((parameter) => isHeaderParameter(parameter, idempotencyKey.header))) {
    parameters.push({
      name: idempotencyKey.header,
      in: 'header',
      required: idempotencyKey.required,
      description:
        'A unique key per logical operation (a UUID as an RFC 8941 string or token, 1–255 printable ASCII characters): ' +
        'a retry with the same key and the same request gets the stored response instead of running it again.' +
        (idempotencyKey.required ? '' : ' Without a key, the request runs without idempotency.'),
      schema: { type: 'string', minLength: 1, maxLength: 257 },
      example: '"8e03978e-40d5-43e8-bc93-6894a57f9324"',
    });
  }
  const responses = operation.responses;
  if (answers.idempotent) {
    for (const [status, response] of Object.entries(responses)) {
      if (!isSuccess(status) || response === undefined || isReference(response)) continue;
      response.headers = { 'Idempotent-Replayed': { $ref: '#/components/headers/Idempotent-Replayed' }, ...response.headers };
      if (idempotencyKey !== undefined) response.headers[idempotencyKey.header] ??= { description: 'The request\'s key, echoed.', schema: { type: 'string' } };
    }
  }
  const byStatus = new Map<number, RouteProblem[]>();
  for (const problem of answers.problems) byStatus.set(problem.status, [...(byStatus.get(problem.status) ?? []), problem]);
  for (const [status, problems] of byStatus) {
    // the application's own documentation of this status wins
    if (responses[status] !== undefined) continue;
    responses[status] = problemResponse(problems, typeBase);
  }
}

/** One response object for the problems a route can answer with one status. */
function problemResponse(problems: readonly RouteProblem[], typeBase: string): ResponseObject {
  const response: ResponseObject = {
    description: problems.map((problem) => `\`${problem.code}\`: ${problem.when}`).join('\n\n'),
    content: {
      [PROBLEM_JSON_CONTENT_TYPE]: {
        schema: { $ref: `#/components/schemas/${PROBLEM_DETAILS_SCHEMA}` },
        examples: Object.fromEntries(
          problems.map((problem) => [
            problem.code,
            { summary: problem.title, value: { type: `${typeBase}${problem.code}`, title: problem.title, status: problem.status, detail: problem.when, code: problem.code } },
          ]),
        ),
      },
    },
  };
  if (problems.some((problem) => problem.retryAfter)) response.headers = { 'Retry-After': { $ref: '#/components/headers/Retry-After' } };
  return response;
}

function isHeaderParameter(parameter: ParameterObject | ReferenceObject, name: string): boolean {
  return !isReference(parameter) && parameter.in === 'header' && parameter.name.toLowerCase() === name.toLowerCase();
}

function isReference(value: unknown): value is ReferenceObject {
  return typeof value === 'object' && value !== null && '$ref' in value;
}

function isSuccess(status: string): boolean {
  const code = Number(status);
  return Number.isInteger(code) && code >= 200 && code < 300;
}
