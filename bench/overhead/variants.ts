import type { ServerChild } from '../shared/children.js';

/**
 * The overhead variants; `no-library` is the same app without ResilienceModule at all. The
 * `-context` pair runs in a process where async-context tracking is already on (an
 * AsyncLocalStorage entered once at start-up, as nestjs-pino, nestjs-cls or OpenTelemetry's
 * context manager do in most real apps): the decorated route is compared with the bare route of
 * that same kind of process.
 */
export const OVERHEAD_VARIANTS = ['no-library', 'bare', 'timeout', 'retryable', 'both', 'bare-context', 'both-context'] as const;
export type OverheadVariant = (typeof OVERHEAD_VARIANTS)[number];

/** Decorated variants, held to the goal against their baseline. */
export const DECORATED_VARIANTS: readonly OverheadVariant[] = ['timeout', 'retryable', 'both', 'both-context'];

/** The bare route a variant is compared with. */
export function baselineOf(variant: OverheadVariant): OverheadVariant {
  return variant.endsWith('-context') ? 'bare-context' : 'bare';
}

/** How each variant's route is written, for the tables. */
export const VARIANT_LABELS: Record<OverheadVariant, string> = {
  'no-library': 'no ResilienceModule',
  bare: 'bare route (module loaded)',
  timeout: '`@Timeout(5000)`',
  retryable: '`@Retryable()`',
  both: '`@Timeout(5000) @Retryable()`',
  'bare-context': 'bare route, async context already on',
  'both-context': '`@Timeout(5000) @Retryable()`, async context already on',
};

/** Sends one request and checks the route answers 200 with the expected body before measuring it. */
export async function checkRoute(server: ServerChild): Promise<void> {
  const response = await fetch(`${server.url}/hello`, { signal: AbortSignal.timeout(60_000) });
  const body = await response.text();
  if (response.status !== 200 || body !== '{"hello":"world"}') {
    throw new Error(`${server.name}: GET /hello answered ${response.status} ${body}; expected 200 {"hello":"world"}.`);
  }
}
