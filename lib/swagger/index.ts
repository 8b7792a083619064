/**
 * `nest-resilience/swagger`: documents what the library adds to each decorated route in the OpenAPI
 * document. The only entry point that imports `@nestjs/swagger` (an optional peer).
 * @module nest-resilience/swagger
 */
export { PROBLEM_DETAILS_SCHEMA, ResilienceSwagger } from './resilience-swagger.js';
