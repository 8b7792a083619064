import { HttpException, Inject, Injectable } from '@nestjs/common';
import { withDeadline } from 'nest-resilience';

/** Injection token of the loopback dependency's base URL. */
export const DEPENDENCY_URL = Symbol('DEPENDENCY_URL');

/**
 * Calls `url` with the current attempt's signal and deadline; a non-2xx answer becomes an
 * `HttpException` with the dependency's status (so 503 is retried and 400 is not).
 */
export async function callDependency(url: string): Promise<unknown> {
  const response = await fetch(url, withDeadline());
  const body: unknown = await response.json();
  if (!response.ok) throw new HttpException({ message: 'dependency failed', upstream: body }, response.status);
  return body;
}

/** A plain provider with the dependency's URL, for controllers that call it directly. */
@Injectable()
export class Dependency {
  constructor(@Inject(DEPENDENCY_URL) readonly url: string) {}

  get(path: string): Promise<unknown> {
    return callDependency(`${this.url}${path}`);
  }
}
