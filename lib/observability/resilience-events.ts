import { Injectable } from '@nestjs/common';
import type { ResilienceEvent, ResilienceEventSink } from '../core/events.js';

/**
 * Listener of {@link ResilienceEvents}. Must not throw (errors are swallowed) and should be quick:
 * it runs on the request path.
 * @publicApi
 */
export type ResilienceEventListener = (event: ResilienceEvent) => void;

/**
 * The typed event stream of the library: every retry, timeout, breaker transition, bulkhead
 * rejection, fallback and idempotency outcome passes through here. The built-in log and
 * OpenTelemetry consumers subscribe to it; so can your own metrics.
 * @example
 * constructor(events: ResilienceEvents) {
 *   events.subscribe((e) => { if (e.event === 'retry') myCounter.inc({ policy: e.policy }); });
 * }
 * @publicApi
 */
@Injectable()
export class ResilienceEvents {
  private listeners: ResilienceEventListener[] = [];
  private enrichers: Array<(event: ResilienceEvent) => ResilienceEvent> = [];

  /** Adds a listener; returns a function that removes it. */
  subscribe(listener: ResilienceEventListener): () => void {
    this.listeners = [...this.listeners, listener];
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    };
  }

  /**
   * Adds a function that completes events before listeners see them (the request id and route of
   * the request being served, for example).
   * @internal
   */
  addEnricher(enrich: (event: ResilienceEvent) => ResilienceEvent): void {
    this.enrichers = [...this.enrichers, enrich];
  }

  /** Publishes one event to every listener. Never throws. */
  emit(event: ResilienceEvent): void {
    if (this.listeners.length === 0) return;
    let enriched = event;
    for (const enrich of this.enrichers) {
      try {
        enriched = enrich(enriched);
      } catch {
        // an enricher must never break the request path
      }
    }
    for (const listener of this.listeners) {
      try {
        listener(enriched);
      } catch {
        // a listener must never break the request path
      }
    }
  }

  /** This stream as a core {@link ResilienceEventSink}, for policies. */
  readonly sink: ResilienceEventSink = (event) => this.emit(event);
}
