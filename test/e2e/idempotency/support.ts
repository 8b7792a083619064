import type { INestApplication, ModuleMetadata } from '@nestjs/common';
import { ResilienceEvents, ResilienceModule, type Clock, type IdempotencyModuleOptions, type ResilienceEvent } from 'nest-resilience';
import { createApp, type Platform } from '../../support/app.js';

export interface IdempotencyTestApp {
  readonly app: INestApplication;
  /** Every event published on `ResilienceEvents`, in order. */
  readonly events: ResilienceEvent[];
  named(name: ResilienceEvent['event']): ResilienceEvent[];
}

/** An app importing `ResilienceModule.forRoot({ idempotency, clock })` on `platform`, recording idempotency events. */
export async function createIdempotencyApp(
  platform: Platform,
  metadata: ModuleMetadata & { idempotency: IdempotencyModuleOptions; clock?: Clock },
  options: { listen?: boolean } = {},
): Promise<IdempotencyTestApp> {
  const { idempotency, clock, ...rest } = metadata;
  const imports = [...(rest.imports ?? []), ResilienceModule.forRoot({ idempotency, ...(clock ? { clock } : {}) })];
  const events: ResilienceEvent[] = [];
  const app = await createApp(platform, { ...rest, imports }, { listen: options.listen });
  app.get(ResilienceEvents).subscribe((event) => {
    if (event.event.startsWith('idempotency_')) events.push(event);
  });
  return { app, events, named: (name) => events.filter((event) => event.event === name) };
}

/** A promise with its resolve function, to hold a handler until the test lets it go. */
export function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** Waits until `condition()` holds (polling real time), failing after `timeoutMs`. */
export async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 5_000, what = 'condition'): Promise<void> {
  const start = Date.now();
  while (!(await condition())) {
    if (Date.now() - start > timeoutMs) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}.`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
