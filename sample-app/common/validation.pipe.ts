import { ValidationPipe, type ArgumentMetadata, type ValidationError } from '@nestjs/common';
import { bodyTooDeepProblem, validationProblem } from './problems.js';

/**
 * Deepest body the pipe hands to class-transformer, which recurses once per level: a 3000-deep
 * JSON body (6 KB) would overflow the stack there and answer 500. No DTO of this API nests deeper
 * than a few levels.
 */
export const MAX_BODY_DEPTH = 32;

/**
 * The app-wide ValidationPipe: unknown fields are rejected, errors are problem+json 400s, and a
 * body nested deeper than {@link MAX_BODY_DEPTH} is refused before it is transformed.
 */
export function createValidationPipe(): ValidationPipe {
  return new DepthLimitedValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    exceptionFactory: (errors: ValidationError[]) => validationProblem(flatten(errors)),
  });
}

class DepthLimitedValidationPipe extends ValidationPipe {
  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    // only what the client sent: other parameters (an EntityManager, the response) are object graphs
    if ((metadata.type === 'body' || metadata.type === 'query') && nestedDeeperThan(value, MAX_BODY_DEPTH)) {
      throw bodyTooDeepProblem(MAX_BODY_DEPTH);
    }
    return super.transform(value, metadata);
  }
}

/** Whether objects/arrays nest deeper than `max` levels; iterative, so any depth is safe to test. */
function nestedDeeperThan(value: unknown, max: number): boolean {
  const pending: Array<[unknown, number]> = [[value, 1]];
  while (pending.length > 0) {
    const [current, depth] = pending.pop()!;
    if (typeof current !== 'object' || current === null) continue;
    if (depth > max) return true;
    for (const child of Object.values(current)) pending.push([child, depth + 1]);
  }
  return false;
}

function flatten(errors: ValidationError[], parent = ''): string[] {
  return errors.flatMap((error) => {
    const path = parent ? `${parent}.${error.property}` : error.property;
    const own = Object.values(error.constraints ?? {}).map((message) => message.replace(error.property, path));
    return [...own, ...flatten(error.children ?? [], path)];
  });
}
