import { ValidationPipe, type ValidationError } from '@nestjs/common';
import { validationProblem } from './problems.js';

/** The app-wide ValidationPipe: unknown fields are rejected, errors are problem+json 400s. */
export function createValidationPipe(): ValidationPipe {
  return new ValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    exceptionFactory: (errors: ValidationError[]) => validationProblem(flatten(errors)),
  });
}

function flatten(errors: ValidationError[], parent = ''): string[] {
  return errors.flatMap((error) => {
    const path = parent ? `${parent}.${error.property}` : error.property;
    const own = Object.values(error.constraints ?? {}).map((message) => message.replace(error.property, path));
    return [...own, ...flatten(error.children ?? [], path)];
  });
}
