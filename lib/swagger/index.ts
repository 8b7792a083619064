// `nest-resilience/swagger`: the only entry point that imports @nestjs/swagger (an optional peer).
export { PROBLEM_DETAILS_SCHEMA, ResilienceSwagger } from './resilience-swagger.js';
