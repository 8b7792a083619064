import { Injectable } from '@nestjs/common';
import type { ResilienceEvent, ResilienceEventName, ResilienceEventSink } from '../core/events.js';

/**
 * Listener of {@link ResilienceEvents}. Must not throw (errors are swallowed) and should be quick:
 * it runs on the request path.
 * @publicApi
 */
export type ResilienceEventListener = (event: ResilienceEvent) => void;

/**
 * Options of {@link ResilienceEvents.subscribe}.
 * @publicApi
 */
export interface ResilienceEventSubscribeOptions {
  /**
   * Which events the listener needs (called often: keep it a lookup). Lets the library skip
   * producing frequent events nobody consumes (`attempt_end`, one per attempt).
   * @default every event
   */
  readonly wants?: (event: ResilienceEventName) => boolean;
}

interface Subscription {
  readonly listener: ResilienceEventListener;
  readonly wants?: (event: ResilienceEventName) => boolean;
}

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
  private subscriptions: Subscription[] = [];
  private enrichers: Array<(event: ResilienceEvent) => ResilienceEvent> = [];

  /**
   * Adds a listener; returns a function that removes it. `options.wants` tells the library which
   * events the listener needs: per-attempt events (`attempt_end`) that no listener wants are not
   * produced at all. Events emitted anyway still reach every listener.
   */
  subscribe(listener: ResilienceEventListener, options: ResilienceEventSubscribeOptions = {}): () => void {
    const subscription: Subscription = { listener, wants: options.wants };
    this.subscriptions = [...this.subscriptions, subscription];
    return () => {
      this.subscriptions = this.subscriptions.filter((s) => s !== subscription);
    };
  }

  /**
   * Whether any listener needs events named `event` now (a listener without `wants` needs all).
   * Producers of frequent events check it before building one.
   */
  wants(event: ResilienceEventName): boolean {
    for (const { wants } of this.subscriptions) {
      if (wants === undefined) return true;
      try {
        if (wants(event)) return true;
      } catch {
        return true;
      }
    }
    return false;
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
    const subscriptions = this.subscriptions;
    if (subscriptions.length === 0) return;
    let enriched = event;
    for (const enrich of this.enrichers) {
      try {
        enriched = enrich(enriched);
      } catch {
        // an enricher must never break the request path
      }
    }
    for (const { listener } of subscriptions) {
      try {
        listener(enriched);
      } catch {
        // a listener must never break the request path
      }
    }
  }

  /** This stream as a core {@link ResilienceEventSink}, for policies. */
  readonly sink: ResilienceEventSink = Object.assign((event: ResilienceEvent) => this.emit(event), {
    wants: (event: ResilienceEventName) => this.wants(event),
  });
}
