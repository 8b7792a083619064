import type { ServerChild } from '../shared/children.js';

/** The overhead variants; `no-library` is the same app without ResilienceModule at all. */
export const OVERHEAD_VARIANTS = ['no-library', 'bare', 'timeout', 'retryable', 'both'] as const;
export type OverheadVariant = (typeof OVERHEAD_VARIANTS)[number];

/** How each variant's route is written, for the tables. */
export const VARIANT_LABELS: Record<OverheadVariant, string> = {
  'no-library': 'no ResilienceModule',
  bare: 'bare route (module loaded)',
  timeout: '`@Timeout(5000)`',
  retryable: '`@Retryable()`',
  both: '`@Timeout(5000) @Retryable()`',
};

/** Sends one request and checks the route answers 200 with the expected body before measuring it. */
export async function checkRoute(server: ServerChild): Promise<void> {
  const response = await fetch(`${server.url}/hello`, { signal: AbortSignal.timeout(60_000) });
  const body = await response.text();
  if (response.status !== 200 || body !== '{"hello":"world"}') {
    throw new Error(`${server.name}: GET /hello answered ${response.status} ${body}; expected 200 {"hello":"world"}.`);
  }
}
