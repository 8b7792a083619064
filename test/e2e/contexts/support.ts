import { Injectable } from '@nestjs/common';

/** What the handlers of a context test did: runs per name (a handler, a handler and key), and the work they saw aborted. */
@Injectable()
export class Ledger {
  readonly runs = new Map<string, number>();
  readonly aborted: string[] = [];

  /** Counts one run of `name`; returns how many runs it has had. */
  run(name: string): number {
    const count = (this.runs.get(name) ?? 0) + 1;
    this.runs.set(name, count);
    return count;
  }

  runsOf(name: string): number {
    return this.runs.get(name) ?? 0;
  }
}

/** The loopback dependency of the context tests: 503 on /down, 503 + Retry-After: 2 on /busy, 200 elsewhere. */
export const dependencyScript = (path: string) =>
  path === '/down' ? { status: 503 } : path === '/busy' ? { status: 503, headers: { 'retry-after': '2' } } : { status: 200, body: 'ok' };
