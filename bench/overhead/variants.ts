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
