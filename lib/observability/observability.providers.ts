import type { Provider } from '@nestjs/common';

/**
 * STUB — filled by the observability work: the providers ResilienceModule registers so that
 * events reach logs and OpenTelemetry (subscribers of ResilienceEvents).
 * @internal
 */
export const observabilityProviders: Provider[] = [];
