import { randomBytes } from 'node:crypto';
import { startNats, type ThrowawayNats } from '../../scripts/nats.mjs';

/** The nats-server `npm test` started (JetStream on), or the one NATS_URL names; undefined when there is none. */
export const natsUrl = process.env.NATS_URL;

/** Whether NATS tests can run; they are skipped (loudly, by `npm test`) otherwise. */
export const hasNats = Boolean(natsUrl);

/** A subject, stream or consumer name of the test's own, so test files sharing the one server never meet. */
export function natsName(name = 'test'): string {
  return `${name}_${randomBytes(6).toString('hex')}`;
}

/**
 * A nats-server owned by one test file, for tests that stop or kill the broker (they must never
 * stop the shared one). Uses the binary `npm test` found (NATS_SERVER), else looks it up.
 */
export function startOwnNats(): Promise<ThrowawayNats> {
  return startNats(process.env.NATS_SERVER ? { bin: process.env.NATS_SERVER } : {});
}
