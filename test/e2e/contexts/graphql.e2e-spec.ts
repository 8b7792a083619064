import 'reflect-metadata';
import { setTimeout as sleep } from 'node:timers/promises';
import { Inject, Injectable, type INestApplication } from '@nestjs/common';
import { ApolloDriver, type ApolloDriverConfig } from '@nestjs/apollo';
import { Args, GraphQLModule, Mutation, Query, Resolver } from '@nestjs/graphql';
import { MercuriusDriver, type MercuriusDriverConfig } from '@nestjs/mercurius';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import type { FastifyReply, FastifyRequest } from 'fastify';
import {
  CircuitBreaker,
  Fallback,
  Idempotent,
  InMemoryIdempotencyStore,
  ResilienceModule,
  Retryable,
  Timeout,
  currentSignal,
} from 'nest-resilience';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchUpstream } from '../http/support.js';
import { startDependency, type LoopbackServer } from '../engine/loopback-servers.js';
import { registerTestSdk } from '../observability/otel-sdk.js';
import { closeAll, dependencyScript, eventLog, GuardedDependency, Ledger, UPSTREAM_URL } from './support.js';

const sdk = registerTestSdk();

// GraphQL over HTTP with real servers (Apollo on Express and on Fastify through
// @as-integrations/fastify, Mercurius on Fastify), schema-first:
// the findings as acceptance tests. @Idempotent() on a mutation dedupes by the GraphQL
// request's Idempotency-Key header (or a key function of the field's arguments); @Timeout,
// @Retryable, an open breaker and idempotency refusals reach the client as GraphQLErrors with
// extensions { code, retryAfterMs, http: { status } }, the other fields' data kept; @Fallback
// answers the field; events name the GraphQL field, never an HTTP route.

const typeDefs = `
  type Report { id: ID!, title: String!, n: Int! }
  type Query { slow: String, fragile: String, flaky: String, degraded: String, healthy: String, guarded: String }
  type Mutation { createReport(title: String!): Report!, payInvoice(invoiceId: ID!, amount: Int!): Int! }
`;

@Resolver()
class ReportsResolver {
  constructor(
    @Inject(UPSTREAM_URL) private readonly upstream: string,
    private readonly ledger: Ledger,
    private readonly guardedService: GuardedDependency,
  ) {}

  @Query()
  @Timeout(150)
  async slow(): Promise<string> {
    this.ledger.run('slow');
    await sleep(2_000, undefined, { signal: currentSignal() });
    return 'late';
  }

  @Query()
  @CircuitBreaker({ strategy: { type: 'consecutive', threshold: 1 }, breakDuration: 60_000 })
  async fragile(): Promise<unknown> {
    this.ledger.run('fragile');
    return fetchUpstream(`${this.upstream}/busy`);
  }

  @Query()
  @Retryable({ maxAttempts: 3, backoff: { type: 'constant', delay: 10 } })
  async flaky(): Promise<unknown> {
    this.ledger.run('flaky');
    return fetchUpstream(`${this.upstream}/down`);
  }

  @Query()
  @Fallback(() => 'cached')
  @Retryable({ maxAttempts: 2, backoff: { type: 'constant', delay: 10 } })
  async degraded(): Promise<unknown> {
    this.ledger.run('degraded');
    return fetchUpstream(`${this.upstream}/down`);
  }

  @Query()
  healthy(): string {
    return 'ok';
  }

  @Query()
  async guarded(): Promise<unknown> {
    return this.guardedService.call();
  }

  @Mutation()
  @Idempotent()
  async createReport(@Args('title') title: string): Promise<{ id: string; title: string; n: number }> {
    const n = this.ledger.run(`createReport:${title}`);
    await sleep(50);
    return { id: `r-${n}`, title, n };
  }

  @Mutation()
  @Idempotent({ key: (args: { invoiceId: string }) => `invoice-${args.invoiceId}` })
  async payInvoice(@Args('invoiceId') invoiceId: string, @Args('amount') amount: number): Promise<number> {
    this.ledger.run(`payInvoice:${invoiceId}`);
    return amount;
  }
}


type Driver = 'apollo (express)' | 'apollo (fastify)' | 'mercurius (fastify)';
const DRIVERS: readonly Driver[] = ['apollo (express)', 'apollo (fastify)', 'mercurius (fastify)'];

async function createGraphQlApp(driver: Driver, upstream: string): Promise<INestApplication> {
  const graphQlModule =
    driver === 'mercurius (fastify)'
      ? GraphQLModule.forRoot<MercuriusDriverConfig>({ driver: MercuriusDriver, typeDefs })
      : driver === 'apollo (fastify)'
        ? // the Fastify reply in the context, where the library sets Idempotent-Replayed (Nest's default context has the request only)
          GraphQLModule.forRoot<ApolloDriverConfig>({ driver: ApolloDriver, typeDefs, context: (req: FastifyRequest, reply: FastifyReply) => ({ req, reply }) })
        : GraphQLModule.forRoot<ApolloDriverConfig>({ driver: ApolloDriver, typeDefs });
  const moduleRef = await Test.createTestingModule({
    imports: [ResilienceModule.forRoot({ idempotency: { store: new InMemoryIdempotencyStore() } }), graphQlModule],
    providers: [ReportsResolver, GuardedDependency, Ledger, { provide: UPSTREAM_URL, useValue: upstream }],
  }).compile();
  const onFastify = driver.endsWith('(fastify)');
  const app = onFastify ? moduleRef.createNestApplication(new FastifyAdapter(), { logger: false }) : moduleRef.createNestApplication({ logger: false });
  await app.init();
  if (onFastify) await app.getHttpAdapter().getInstance().ready();
  return app;
}

describe.each<Driver>(DRIVERS)('GraphQL on %s (schema-first)', (driver) => {
  let upstream: LoopbackServer;
  let app: INestApplication;
  let ledger: Ledger;
  const { events, listen } = eventLog();

  beforeAll(async () => {
    upstream = await startDependency(dependencyScript);
    app = await createGraphQlApp(driver, upstream.url);
    ledger = app.get(Ledger);
    listen(app);
  });

  afterAll(async () => {
    await closeAll(app, upstream);
    if (driver === DRIVERS.at(-1)) await sdk.shutdown();
  });

  const graphql = (query: string, headers: Record<string, string> = {}) => request(app.getHttpServer()).post('/graphql').set(headers).send({ query });

  it('@Idempotent() on a mutation runs once per Idempotency-Key header and replays the stored data', async () => {
    const mutation = 'mutation { createReport(title: "Q3") { id title n } }';
    const first = await graphql(mutation, { 'idempotency-key': 'report-q3' });
    const second = await graphql(mutation, { 'idempotency-key': 'report-q3' });
    expect(first.body).toEqual({ data: { createReport: { id: 'r-1', title: 'Q3', n: 1 } } });
    expect(second.body).toEqual(first.body);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(ledger.runsOf('createReport:Q3')).toBe(1);
  });

  it('concurrent duplicates of a mutation run it once: the one in flight is refused with idempotency_request_in_progress (409)', async () => {
    const mutation = 'mutation { createReport(title: "Q4") { id title n } }';
    const answers = await Promise.all([1, 2, 3].map(() => graphql(mutation, { 'idempotency-key': 'report-q4' })));
    expect(ledger.runsOf('createReport:Q4')).toBe(1);
    const served = answers.filter((answer) => answer.body.data?.createReport?.title === 'Q4');
    expect(served.length).toBeGreaterThanOrEqual(1);
    for (const answer of answers.filter((one) => one.body.errors !== undefined)) {
      expect(answer.body.errors[0]).toMatchObject({ path: ['createReport'], extensions: { code: 'idempotency_request_in_progress', http: { status: 409 } } });
    }
  });

  it('the same key with other arguments is refused as idempotency_key_reused (422), and the handler does not run', async () => {
    await graphql('mutation { createReport(title: "Q1") { id } }', { 'idempotency-key': 'report-q1' });
    const reused = await graphql('mutation { createReport(title: "Q2") { id } }', { 'idempotency-key': 'report-q1' });
    expect(reused.body.errors[0]).toMatchObject({ path: ['createReport'], extensions: { code: 'idempotency_key_reused', http: { status: 422 } } });
    expect(ledger.runsOf('createReport:Q2')).toBe(0);
  });

  it('@Idempotent({ key: (args) => ... }) reads the key from the mutation arguments, no header needed', async () => {
    const first = await graphql('mutation { payInvoice(invoiceId: "i-7", amount: 40) }');
    const second = await graphql('mutation { payInvoice(invoiceId: "i-7", amount: 40) }');
    expect(first.body).toEqual({ data: { payInvoice: 40 } });
    expect(second.body).toEqual(first.body);
    expect(ledger.runsOf('payInvoice:i-7')).toBe(1);
    const stored = events.find((event) => event.event === 'idempotency_replayed');
    expect(stored).toMatchObject({ contextType: 'graphql', operation: 'Mutation.payInvoice' });
    expect(stored).not.toHaveProperty('route');
  });

  it('@Timeout reaches the client as a GraphQLError { code: timeout, http: { status: 503 } }, the other fields kept; the event names the field', async () => {
    const timedOut = await graphql('query Dashboard { slow healthy }');
    expect(timedOut.status).toBe(200);
    expect(timedOut.body.data).toEqual({ slow: null, healthy: 'ok' });
    expect(timedOut.body.errors[0]).toMatchObject({ path: ['slow'], extensions: { code: 'timeout', http: { status: 503 } } });
    const timeout = events.find((event) => event.event === 'deadline_exceeded' || event.event === 'attempt_timeout');
    expect(timeout).toMatchObject({
      contextType: 'graphql',
      operation: 'Query.slow',
      attributes: { 'graphql.operation.type': 'query', 'graphql.operation.name': 'Dashboard', 'graphql.field.path': 'Query.slow' },
    });
    expect(timeout).not.toHaveProperty('route');
  });

  it('an open breaker answers circuit_open with retryAfterMs, without running the resolver', async () => {
    await graphql('{ fragile }');
    const runs = ledger.runsOf('fragile');
    const refused = await graphql('{ fragile healthy }');
    expect(refused.body.data).toEqual({ fragile: null, healthy: 'ok' });
    expect(refused.body.errors[0]).toMatchObject({
      path: ['fragile'],
      extensions: { code: 'circuit_open', retryAfterMs: expect.any(Number), http: { status: 503, headers: { 'retry-after': expect.stringMatching(/^\d+$/) } } },
    });
    expect(ledger.runsOf('fragile')).toBe(runs);
  });

  it('@Retryable retries the resolver, then the client gets a typed error with a retry hint; each attempt span carries the graphql attributes and the request id reaches the events', async () => {
    const before = sdk.spans().length;
    const answer = await graphql('query Flaky { flaky healthy }', { 'x-request-id': `req-${driver}` });
    expect(ledger.runsOf('flaky')).toBe(3);
    const attempts = sdk
      .spans()
      .slice(before)
      .filter((span) => span.name === 'resilience.attempt' && span.attributes['graphql.field.path'] === 'Query.flaky');
    expect(attempts.map((span) => span.attributes)).toEqual(
      [1, 2, 3].map((attempt) => expect.objectContaining({ 'resilience.attempt': attempt, 'graphql.operation.type': 'query', 'graphql.operation.name': 'Flaky' })),
    );
    expect(attempts.some((span) => 'http.request.resend_count' in span.attributes)).toBe(false);
    expect(events.find((event) => event.event === 'retry')).toMatchObject({ requestId: `req-${driver}`, contextType: 'graphql', operation: 'Query.flaky' });
    expect(answer.body.data).toEqual({ flaky: null, healthy: 'ok' });
    expect(answer.body.errors[0].extensions).toMatchObject({ code: expect.stringMatching(/^(retries_exhausted|upstream_unavailable)$/), retryAfterMs: expect.any(Number), http: { status: 503 } });
    expect(answer.body.errors[0].message).not.toMatch(/503|127\.0\.0\.1/);
  });

  it('@Fallback answers the field when every attempt failed', async () => {
    const answer = await graphql('{ degraded }');
    expect(answer.body).toEqual({ data: { degraded: 'cached' } });
    expect(ledger.runsOf('degraded')).toBe(2);
  });

  it("an undecorated resolver calling a decorated service gets the library's error as a typed GraphQLError (the exception filter)", async () => {
    await graphql('{ guarded }');
    const refused = await graphql('{ guarded healthy }');
    expect(refused.body.data).toEqual({ guarded: null, healthy: 'ok' });
    expect(refused.body.errors[0]).toMatchObject({ path: ['guarded'], extensions: { code: 'circuit_open', http: { status: 503 } } });
  });
});
