import 'reflect-metadata';
import { Body, Controller, Get, HttpException, Post, type INestApplication } from '@nestjs/common';
import { metrics } from '@opentelemetry/api';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { load } from 'js-yaml';
import { CircuitBreaker, DEFAULT_EVENT_LOG_LEVELS, Idempotent, ResilienceModule, Retryable, TELEMETRY_NAMES } from 'nest-resilience';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../support/app.js';
import { exactValuesOf, exposedMetrics, referencesOf, variableReferencesOf, type PromQlReferences } from './promql.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const DASHBOARD = join(root, 'ops/grafana/nest-resilience.json');
const RULES = join(root, 'ops/prometheus/nest-resilience.rules.yml');
/** Labels Prometheus adds to every scraped series (the target's), besides the exporter's. */
const TARGET_LABELS = new Set(['job', 'instance']);
const EVENT_NAMES = new Set(Object.keys(DEFAULT_EVENT_LOG_LEVELS));

/** Produces every metric the library records: retries, a breaker, idempotent requests, a chaos rule. */
@Controller('ops')
class MetricsSourceController {
  @Get('quotes')
  @Retryable({ maxAttempts: 2, backoff: { type: 'constant', delay: 1 } })
  @CircuitBreaker({ key: 'quotes', strategy: { type: 'consecutive', threshold: 100 } })
  quotes(): { price: number } {
    return { price: 1 };
  }

  @Get('failing')
  @Retryable({ maxAttempts: 2, backoff: { type: 'constant', delay: 1 } })
  failing(): never {
    throw new HttpException('down', 503);
  }

  @Post('orders')
  @Idempotent()
  order(@Body() body: { item: string }): { item: string } {
    return body;
  }
}

interface Rule {
  readonly alert: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
}

/** Every PromQL expression of the dashboard: panel targets, annotations, and variable queries. */
function dashboardQueries(dashboard: any): Array<{ where: string; references: PromQlReferences & { readsLabel?: string } }> {
  const found: Array<{ where: string; references: PromQlReferences & { readsLabel?: string } }> = [];
  const walk = (node: unknown, where: string) => {
    if (Array.isArray(node)) node.forEach((item, index) => walk(item, `${where}[${index}]`));
    else if (node !== null && typeof node === 'object') {
      const object = node as Record<string, unknown>;
      if (typeof object.expr === 'string') found.push({ where: `${where} (${String(object.title ?? object.name ?? object.refId ?? '')})`, references: referencesOf(object.expr) });
      for (const [key, value] of Object.entries(object)) walk(value, `${where}.${key}`);
    }
  };
  walk(dashboard.panels, 'panels');
  walk(dashboard.annotations, 'annotations');
  for (const variable of dashboard.templating.list) {
    if (variable.type === 'query') found.push({ where: `variable ${variable.name}`, references: variableReferencesOf(variable.query.query ?? variable.query) });
  }
  return found;
}

// A real app records every metric through the OpenTelemetry Prometheus exporter (what the README
// and the sample app use); every query of ops/ must name one of the metrics and labels it exposes.
describe('ops/: the Grafana dashboard and the Prometheus alert rules', () => {
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const provider = new MeterProvider({ readers: [exporter] });
  metrics.setGlobalMeterProvider(provider);
  let app: INestApplication;
  let exposed: Map<string, Set<string>>;

  beforeAll(async () => {
    app = await createApp('express', {
      imports: [
        ResilienceModule.forRoot({
          chaos: {
            enabled: true,
            seed: 1,
            rules: [{ id: 'slow-quotes', target: { route: 'GET /ops/quotes' }, fault: { kind: 'exception' }, rate: 1 }],
          },
        }),
      ],
      controllers: [MetricsSourceController],
    });
    await request(app.getHttpServer()).get('/ops/quotes').expect(503);
    await request(app.getHttpServer()).get('/ops/failing').expect(503);
    await request(app.getHttpServer()).post('/ops/orders').set('idempotency-key', 'ops-1').send({ item: 'a' }).expect(201);
    const { resourceMetrics } = await exporter.collect();
    exposed = exposedMetrics(new PrometheusSerializer().serialize(resourceMetrics));
  });

  afterAll(async () => {
    await app?.close();
    await provider.shutdown();
    metrics.disable();
  });

  const check = (where: string, references: PromQlReferences & { readsLabel?: string }): string[] => {
    const problems: string[] = [];
    const labelsInExpr = new Set<string>([...TARGET_LABELS, 'le']);
    if (references.selectors.length === 0) problems.push(`${where}: names no metric`);
    for (const { metric, matchers } of references.selectors) {
      const labels = exposed.get(metric);
      if (labels === undefined) {
        problems.push(`${where}: ${metric || '(no name)'} is not an exported metric`);
        continue;
      }
      for (const label of labels) labelsInExpr.add(label);
      for (const matcher of matchers) {
        if (!labels.has(matcher.label) && !TARGET_LABELS.has(matcher.label)) problems.push(`${where}: ${metric} has no label ${matcher.label}`);
        if (matcher.label === 'event_name') {
          for (const value of exactValuesOf(matcher) ?? []) if (!EVENT_NAMES.has(value)) problems.push(`${where}: no event is named ${value}`);
        }
      }
    }
    for (const label of [...references.groupingLabels, ...(references.readsLabel ? [references.readsLabel] : [])]) {
      if (!labelsInExpr.has(label)) problems.push(`${where}: groups by ${label}, which none of its metrics has`);
    }
    return problems;
  };

  it('the exporter exposes every metric the library documents (TELEMETRY_NAMES), under the names the queries use', () => {
    for (const name of ['resilience_events_total', 'resilience_attempt_duration_bucket', 'resilience_circuit_state', 'idempotency_requests_total', 'resilience_chaos_injection_rate']) {
      expect([name, exposed.has(name)]).toEqual([name, true]);
    }
    expect(TELEMETRY_NAMES).toMatchObject({ eventsCounter: 'resilience.events', chaosInjectionRate: 'resilience.chaos.injection_rate' });
    expect([...exposed.get('resilience_events_total')!]).toEqual(expect.arrayContaining(['event_name', 'policy', 'outcome', 'resilience_chaos']));
    expect([...exposed.get('resilience_chaos_injection_rate')!]).toEqual(expect.arrayContaining(['chaos_rule', 'chaos_fault', 'chaos_target']));
  });

  it('every query of the dashboard names an exported metric, with labels it has', () => {
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8'));
    const queries = dashboardQueries(dashboard);
    expect(queries.length).toBeGreaterThanOrEqual(15);
    expect(queries.flatMap(({ where, references }) => check(where, references))).toEqual([]);
  });

  it('the dashboard is importable: unique panel ids within 24 columns, every panel on the datasource variable, every variable it uses defined', () => {
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8'));
    const ids = dashboard.panels.map((panel: any) => panel.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const panel of dashboard.panels) {
      expect(panel.gridPos.x + panel.gridPos.w).toBeLessThanOrEqual(24);
      if (panel.type !== 'row') expect([panel.title, panel.datasource]).toEqual([panel.title, { type: 'prometheus', uid: '${datasource}' }]);
    }
    const defined = new Set(dashboard.templating.list.map((variable: any) => variable.name));
    const used = new Set([...JSON.stringify(dashboard).matchAll(/\$\{?([a-z]\w*)/g)].map((match) => match[1]));
    expect([...used].filter((name) => !defined.has(name))).toEqual([]);
  });

  it('every alert rule names an exported metric, and its annotations only use labels its expression keeps', () => {
    const file = load(readFileSync(RULES, 'utf8')) as { groups: Array<{ name: string; rules: Rule[] }> };
    const rules = file.groups.flatMap((group) => group.rules);
    expect(rules.map((rule) => rule.alert)).toEqual([
      'ResilienceCircuitBreakerOpen',
      'ResilienceCircuitBreakerIsolated',
      'ResilienceRetryBudgetExhausted',
      'ResilienceIdempotencyStoreErrors',
      'ResilienceSharedStateUnavailable',
      'ResilienceChaosLeftOn',
    ]);
    const problems: string[] = [];
    for (const rule of rules) {
      const references = referencesOf(rule.expr);
      problems.push(...check(rule.alert, references));
      expect([rule.alert, rule.labels?.severity, typeof rule.annotations?.summary, rule.for]).toEqual([rule.alert, expect.stringMatching(/^(critical|warning|info)$/), 'string', expect.stringMatching(/^\d+[smh]$/)]);
      const kept = new Set(references.groupingLabels);
      for (const [, label] of JSON.stringify(rule.annotations).matchAll(/\$labels\.(\w+)/g)) {
        if (!kept.has(label!)) problems.push(`${rule.alert}: its annotations use $labels.${label}, which its expression drops`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('the checks catch a wrong name: a misspelt metric, an unknown label, an unknown event and a dropped label are reported', () => {
    expect(check('typo', referencesOf('rate(resilience_event_total[5m])'))).toEqual(['typo: resilience_event_total is not an exported metric']);
    expect(check('label', referencesOf('sum by (policy) (resilience_events_total{event="retry"})'))).toEqual(['label: resilience_events_total has no label event']);
    expect(check('event', referencesOf('resilience_events_total{event_name=~"retry|breaker_open"}'))).toEqual(['event: no event is named breaker_open']);
    expect(check('grouping', referencesOf('sum by (route) (idempotency_requests_total)'))).toEqual(['grouping: groups by route, which none of its metrics has']);
  });
});
