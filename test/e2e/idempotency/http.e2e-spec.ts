import { Readable } from 'node:stream';
import {
  Body,
  CanActivate,
  Controller,
  ExecutionContext,
  Get,
  HttpCode,
  HttpException,
  Injectable,
  Logger,
  Post,
  Res,
  StreamableFile,
  UseGuards,
  ValidationPipe,
  type INestApplication,
} from '@nestjs/common';
import { APP_PIPE } from '@nestjs/core';
import { IsInt, IsOptional, IsString } from 'class-validator';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  Idempotent,
  InMemoryIdempotencyStore,
  type IdempotencyClaim,
  type IdempotencyClaimResult,
} from 'nest-resilience';
import { ProblemDetailsException } from '../../../lib/http/problem-details.js';
import { platforms } from '../../support/app.js';
import { createIdempotencyApp, gate, type IdempotencyTestApp } from './support.js';

class CreateReportDto {
  @IsString()
  title!: string;

  @IsOptional()
  @IsInt()
  pages?: number;
}

/** Counts handler executions per route, shared by the controllers below. */
const runs: Record<string, number> = {};
const ran = (name: string) => (runs[name] = (runs[name] ?? 0) + 1);
let holdCreate: Promise<void> | undefined;

@Controller('reports')
@Idempotent()
class ReportsController {
  @Get()
  list() {
    return { runs: ran('list') };
  }

  @Post()
  @HttpCode(202)
  async create(@Body() dto: CreateReportDto, @Res({ passthrough: true }) res: { header(name: string, value: string): unknown }) {
    const n = ran('create');
    await holdCreate;
    res.header('Location', `/reports/${n}`);
    res.header('ETag', `"v${n}"`);
    res.header('Set-Cookie', `session=s${n}; HttpOnly`);
    res.header('X-Trace', `t${n}`);
    return { id: n, title: dto.title, pages: dto.pages ?? null };
  }
}

/** Sets `req.user` from the `x-user` header, like an auth guard. */
@Injectable()
class FakeAuthGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const req = context.switchToHttp().getRequest();
    const user = req.headers['x-user'];
    if (user) req.user = { id: user };
    return true;
  }
}

@Controller('misc')
@UseGuards(FakeAuthGuard)
class MiscController {
  @Post('big')
  @Idempotent({ maxStoredBodyBytes: 64 })
  big() {
    return { n: ran('big'), filler: 'x'.repeat(200) };
  }

  @Post('payment')
  @Idempotent()
  payment(@Body() body: { amount: number }) {
    const n = ran('payment');
    if (body.amount > 100) throw new HttpException({ message: 'card declined', n }, 402);
    return { n };
  }

  @Post('problem')
  @Idempotent()
  problem() {
    const n = ran('problem');
    throw new ProblemDetailsException({ status: 409, code: 'report_locked', detail: `locked ${n}`, headers: { 'Retry-After': '7' } });
  }

  @Post('boom')
  @Idempotent()
  boom(@Body() body: { crash?: boolean }) {
    const n = ran('boom');
    if (body.crash) throw new Error('driver exploded');
    throw new HttpException({ message: 'upstream down', n }, 503);
  }

  @Post('text')
  @Idempotent()
  text() {
    return `plain ${ran('text')}`;
  }

  @Post('empty')
  @Idempotent()
  @HttpCode(204)
  empty() {
    ran('empty');
  }

  @Post('stream')
  @Idempotent()
  stream() {
    return new StreamableFile(Readable.from([Buffer.from(`chunk ${ran('stream')}`)]));
  }

  @Post('tenant')
  @Idempotent({ scope: (req) => req.user?.id })
  tenant(@Body() body: { item: string }) {
    return { n: ran('tenant'), item: body.item };
  }

  @Post('unscoped')
  @Idempotent()
  unscoped() {
    return { n: ran('unscoped') };
  }

  @Post('optional')
  @Idempotent({ required: false })
  optional() {
    return { n: ran('optional') };
  }

  @Post('small')
  @Idempotent({ maxBodyBytes: 1_000, maxBodyDepth: 8 })
  small(@Body() body: unknown) {
    return { n: ran('small'), size: JSON.stringify(body).length };
  }

  @Post('fail-open')
  @Idempotent({ failOpen: true })
  failOpen() {
    return { n: ran('fail-open') };
  }
}

/** Memory store that can be switched to "unreachable". */
class FlakyStore extends InMemoryIdempotencyStore {
  down = false;
  override async claim(claim: IdempotencyClaim): Promise<IdempotencyClaimResult> {
    if (this.down) throw new Error('connect ECONNREFUSED 127.0.0.1:5432');
    return super.claim(claim);
  }
}

const PROBLEM = /^application\/problem\+json/;
let keyCounter = 0;
const newKey = () => `key-${Date.now()}-${keyCounter++}`;

describe.each(platforms)('@Idempotent() over HTTP (%s)', (platform) => {
  let harness: IdempotencyTestApp;
  let app: INestApplication;
  let store: FlakyStore;
  const http = () => request(app.getHttpServer());

  beforeAll(async () => {
    store = new FlakyStore();
    harness = await createIdempotencyApp(platform, {
      controllers: [ReportsController, MiscController],
      providers: [{ provide: APP_PIPE, useValue: new ValidationPipe({ whitelist: true }) }],
      idempotency: { store },
    });
    app = harness.app;
  });
  afterAll(async () => {
    await app?.close();
  });
  afterEach(() => {
    store.down = false;
    holdCreate = undefined;
    vi.restoreAllMocks();
  });

  describe('replay exactness', () => {
    it('replays status from @HttpCode, Location, ETag and the body once, without Set-Cookie, marked Idempotent-Replayed', async () => {
      const key = newKey();
      const before = runs.create ?? 0;
      const first = await http().post('/reports').set('Idempotency-Key', key).send({ title: 'Q3' }).expect(202);
      expect(first.headers['idempotent-replayed']).toBeUndefined();
      expect(first.headers['idempotency-key']).toBe(key);
      expect(first.headers['set-cookie']).toBeDefined();
      const n = first.body.id;
      expect(first.headers.location).toBe(`/reports/${n}`);

      const replay = await http().post('/reports').set('Idempotency-Key', key).send({ title: 'Q3' }).expect(202);
      expect(replay.body).toEqual(first.body);
      expect(replay.headers['idempotent-replayed']).toBe('true');
      expect(replay.headers['idempotency-key']).toBe(key);
      expect(replay.headers.location).toBe(`/reports/${n}`);
      expect(replay.headers.etag).toBe(`"v${n}"`);
      expect(replay.headers['content-type']).toMatch(/^application\/json/);
      expect(replay.headers['set-cookie']).toBeUndefined();
      expect(replay.headers['x-trace']).toBeUndefined();
      expect(runs.create).toBe(before + 1);
      expect(harness.named('idempotency_replayed').at(-1)).toMatchObject({ policy: 'POST /reports', status: 202 });
    });

    it('accepts the key as an RFC 8941 quoted string', async () => {
      const key = newKey();
      const first = await http().post('/reports').set('Idempotency-Key', `"${key}"`).send({ title: 'quoted' }).expect(202);
      const replay = await http().post('/reports').set('Idempotency-Key', key).send({ title: 'quoted' }).expect(202);
      expect(replay.headers['idempotent-replayed']).toBe('true');
      expect(replay.body).toEqual(first.body);
    });

    it('leaves GET routes of an @Idempotent() class alone (no key required, never replayed)', async () => {
      const first = await http().get('/reports').expect(200);
      const second = await http().get('/reports').set('Idempotency-Key', 'same').expect(200);
      expect(second.body.runs).toBe(first.body.runs + 1);
      expect(second.headers['idempotent-replayed']).toBeUndefined();
    });

    it('replays a text body and an empty 204', async () => {
      const key = newKey();
      const text = await http().post('/misc/text').set('Idempotency-Key', key).expect(201);
      const textReplay = await http().post('/misc/text').set('Idempotency-Key', key).expect(201);
      expect(textReplay.text).toBe(text.text);
      expect(textReplay.headers['content-type']).toBe(text.headers['content-type']);

      const before = runs.empty ?? 0;
      const emptyKey = newKey();
      await http().post('/misc/empty').set('Idempotency-Key', emptyKey).expect(204);
      const emptyReplay = await http().post('/misc/empty').set('Idempotency-Key', emptyKey).expect(204);
      expect(emptyReplay.headers['idempotent-replayed']).toBe('true');
      expect(runs.empty).toBe(before + 1);
    });

    it('stores an HttpException thrown by the handler and re-throws the same status and body on replay', async () => {
      const key = newKey();
      const first = await http().post('/misc/payment').set('Idempotency-Key', key).send({ amount: 500 }).expect(402);
      const replay = await http().post('/misc/payment').set('Idempotency-Key', key).send({ amount: 500 }).expect(402);
      expect(replay.body).toEqual(first.body);
      expect(replay.body.message).toBe('card declined');
      expect(replay.headers['idempotent-replayed']).toBe('true');
    });

    it('replays a problem+json error of the handler as problem+json with its extra headers', async () => {
      const key = newKey();
      const first = await http().post('/misc/problem').set('Idempotency-Key', key).expect(409);
      expect(first.headers['content-type']).toMatch(PROBLEM);
      const replay = await http().post('/misc/problem').set('Idempotency-Key', key).expect(409);
      expect(replay.headers['content-type']).toMatch(PROBLEM);
      expect(replay.headers['retry-after']).toBe('7');
      expect(replay.body).toEqual(first.body);
      expect(replay.body).toMatchObject({ code: 'report_locked', status: 409 });
    });
  });

  describe('what is not stored', () => {
    it('releases the key after a 5xx or a crash, so a retry runs the handler again', async () => {
      const key = newKey();
      const before = runs.boom ?? 0;
      await http().post('/misc/boom').set('Idempotency-Key', key).send({}).expect(503);
      await http().post('/misc/boom').set('Idempotency-Key', key).send({}).expect(503);
      const crashKey = newKey();
      await http().post('/misc/boom').set('Idempotency-Key', crashKey).send({ crash: true }).expect(500);
      await http().post('/misc/boom').set('Idempotency-Key', crashKey).send({ crash: true }).expect(500);
      expect(runs.boom).toBe(before + 4);
      expect(harness.named('idempotency_released').map((e) => e.outcome)).toEqual(expect.arrayContaining(['not_stored', 'crash']));
    });

    it('never stores a ValidationPipe 400, nor touches the store for it: the corrected request with the same key executes', async () => {
      const key = newKey();
      const before = runs.create ?? 0;
      const eventsBefore = harness.events.length;
      const invalid = await http().post('/reports').set('Idempotency-Key', key).send({ title: 42 }).expect(400);
      expect(invalid.headers['idempotent-replayed']).toBeUndefined();
      expect(runs.create).toBe(before);
      // pipes run before the idempotency layer: the refused request never claimed its key
      expect(harness.events.slice(eventsBefore)).toEqual([]);
      const fixed = await http().post('/reports').set('Idempotency-Key', key).send({ title: 'fixed' }).expect(202);
      expect(fixed.body.title).toBe('fixed');
      expect(fixed.headers['idempotent-replayed']).toBeUndefined();
      expect(runs.create).toBe(before + 1);
    });

    it('delivers a body over the limit once (maxStoredBodyBytes, the former name of maxResponseBytes), completes the key without it and warns: the retry gets idempotency_response_not_kept with the original status, the handler does not run again', async () => {
      const warn = vi.spyOn(Logger.prototype, 'warn');
      const key = newKey();
      const first = await http().post('/misc/big').set('Idempotency-Key', key).expect(201);
      const runsAfterFirst = runs.big;
      const second = await http().post('/misc/big').set('Idempotency-Key', key).expect(201);
      expect(first.body.filler).toHaveLength(200);
      expect(runs.big).toBe(runsAfterFirst);
      expect(second.headers['idempotent-replayed']).toBe('true');
      expect(second.headers['content-type']).toMatch(PROBLEM);
      expect(second.body).toMatchObject({ status: 201, code: 'idempotency_response_not_kept', title: 'Response not kept for replay' });
      expect(second.body.detail).toMatch(/succeeded \(status 201\) and was not executed again, but its response body \(\d+ bytes\) was larger than the server keeps for replay/);
      expect(warn.mock.calls.some(([message]) => /more than maxResponseBytes \(64\).*completed without the body/.test(String(message)))).toBe(true);
      expect(harness.named('idempotency_response_not_kept').at(-1)).toMatchObject({ outcome: 'too_large', policy: 'POST /misc/big', code: 'idempotency_response_not_kept' });
    });

    it('delivers a StreamableFile once and completes its key without the body, with a warning: the retry gets idempotency_response_not_kept', async () => {
      const warn = vi.spyOn(Logger.prototype, 'warn');
      const key = newKey();
      const first = await http().post('/misc/stream').set('Idempotency-Key', key).buffer(true).parse((res, done) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => done(null, Buffer.concat(chunks).toString()));
      }).expect(201);
      expect(first.body).toMatch(/^chunk \d+$/);
      const runsAfterFirst = runs.stream;
      const second = await http().post('/misc/stream').set('Idempotency-Key', key).expect(201);
      expect(runs.stream).toBe(runsAfterFirst);
      expect(second.headers['idempotent-replayed']).toBe('true');
      expect(second.body).toMatchObject({ code: 'idempotency_response_not_kept' });
      expect(second.body.detail).toMatch(/a stream or a file/);
      expect(warn.mock.calls.some(([message]) => /returned a StreamableFile/.test(String(message)))).toBe(true);
    });
  });

  describe('bad input', () => {
    it('answers 400 idempotency_key_missing when the key is required and absent; the handler does not run', async () => {
      const before = runs.create ?? 0;
      const res = await http().post('/reports').send({ title: 'x' }).expect(400);
      expect(res.headers['content-type']).toMatch(PROBLEM);
      expect(res.body).toMatchObject({ status: 400, code: 'idempotency_key_missing', title: 'Idempotency-Key is missing' });
      expect(res.body.type).toMatch(/idempotency_key_missing$/);
      expect(res.body.detail).toEqual(expect.any(String));
      expect(runs.create ?? 0).toBe(before);
      expect(harness.named('idempotency_rejected').at(-1)).toMatchObject({ status: 400, detail: 'missing' });
    });

    it('runs without idempotency when the key is optional and absent', async () => {
      const first = await http().post('/misc/optional').expect(201);
      const second = await http().post('/misc/optional').expect(201);
      expect(second.body.n).toBe(first.body.n + 1);
    });

    it.each([
      ['empty', ''],
      ['256 characters', 'k'.repeat(256)],
      ['a control character', 'ab\tcd'],
      ['non-ASCII', 'caf\u00e9'],
      ['a malformed quoted string', '"abc'],
      ['parameters', '"abc";v=1'],
    ])('answers 400 idempotency_key_invalid for %s; the handler does not run', async (_what, value) => {
      const before = runs.create ?? 0;
      const res = await http().post('/reports').set('Idempotency-Key', value).send({ title: 'x' }).expect(400);
      expect(res.headers['content-type']).toMatch(PROBLEM);
      expect(res.body).toMatchObject({ status: 400, code: 'idempotency_key_invalid' });
      expect(runs.create ?? 0).toBe(before);
    });

    it('answers 422 idempotency_key_reused for the same key with another body, and keeps the stored response', async () => {
      const key = newKey();
      const first = await http().post('/reports').set('Idempotency-Key', key).send({ title: 'A' }).expect(202);
      const other = await http().post('/reports').set('Idempotency-Key', key).send({ title: 'B' }).expect(422);
      expect(other.headers['content-type']).toMatch(PROBLEM);
      expect(other.body).toMatchObject({ status: 422, code: 'idempotency_key_reused' });
      const replay = await http().post('/reports').set('Idempotency-Key', key).send({ title: 'A' }).expect(202);
      expect(replay.body).toEqual(first.body);
      expect(harness.named('idempotency_mismatch').at(-1)).toMatchObject({ status: 422, policy: 'POST /reports' });
    });

    it('answers 422 for the same key on another route', async () => {
      const key = newKey();
      await http().post('/misc/unscoped').set('Idempotency-Key', key).expect(201);
      await http().post('/misc/optional').set('Idempotency-Key', key).expect(422);
    });
  });

  describe('concurrency and scope', () => {
    it('answers 409 with Retry-After while the first request runs (422 wins for another body), then replays', async () => {
      const key = newKey();
      const hold = gate();
      holdCreate = hold.promise;
      const before = runs.create ?? 0;
      const first = http().post('/reports').set('Idempotency-Key', key).send({ title: 'slow' }).then((res) => res);
      await vi.waitFor(() => expect(runs.create).toBe(before + 1));
      const conflict = await http().post('/reports').set('Idempotency-Key', key).send({ title: 'slow' }).expect(409);
      expect(conflict.headers['content-type']).toMatch(PROBLEM);
      expect(conflict.body).toMatchObject({ status: 409, code: 'idempotency_request_in_progress' });
      expect(Number(conflict.headers['retry-after'])).toBeGreaterThanOrEqual(59);
      expect(Number(conflict.headers['retry-after'])).toBeLessThanOrEqual(60);
      await http().post('/reports').set('Idempotency-Key', key).send({ title: 'other' }).expect(422);
      hold.open();
      expect((await first).status).toBe(202);
      const replay = await http().post('/reports').set('Idempotency-Key', key).send({ title: 'slow' }).expect(202);
      expect(replay.headers['idempotent-replayed']).toBe('true');
      expect(runs.create).toBe(before + 1);
      expect(harness.named('idempotency_conflict').at(-1)).toMatchObject({ status: 409, policy: 'POST /reports' });
    });

    it("never replays user A's key to user B (scope resolver after guards)", async () => {
      const key = newKey();
      const a = await http().post('/misc/tenant').set('x-user', 'alice').set('Idempotency-Key', key).send({ item: 'x' }).expect(201);
      const b = await http().post('/misc/tenant').set('x-user', 'bob').set('Idempotency-Key', key).send({ item: 'x' }).expect(201);
      expect(b.headers['idempotent-replayed']).toBeUndefined();
      expect(b.body.n).toBe(a.body.n + 1);
      const bOther = await http().post('/misc/tenant').set('x-user', 'bob').set('Idempotency-Key', key).send({ item: 'y' }).expect(422);
      expect(bOther.body.code).toBe('idempotency_key_reused');
      const aAgain = await http().post('/misc/tenant').set('x-user', 'alice').set('Idempotency-Key', key).send({ item: 'x' }).expect(201);
      expect(aAgain.headers['idempotent-replayed']).toBe('true');
      expect(aAgain.body).toEqual(a.body);
    });

    it('warns once per route when req.user exists but no scope is configured', async () => {
      const warn = vi.spyOn(Logger.prototype, 'warn');
      await http().post('/misc/unscoped').set('x-user', 'alice').set('Idempotency-Key', newKey()).expect(201);
      await http().post('/misc/unscoped').set('x-user', 'bob').set('Idempotency-Key', newKey()).expect(201);
      const scopeWarnings = warn.mock.calls.filter(([message]) => /keys are global/.test(String(message)));
      expect(scopeWarnings).toHaveLength(1);
      expect(String(scopeWarnings[0][0])).toMatch(/POST \/misc\/unscoped/);
    });
  });

  describe('hostile bodies', () => {
    /** `{"a":{"a":…{"a":1}…}}`, `depth` objects deep, as raw JSON text (6 bytes a level). */
    const nested = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;

    it('answers a 3000-deep body with 400 idempotency_body_too_deep before claiming the key, and the key stays free', async () => {
      const claim = vi.spyOn(store, 'claim');
      const key = newKey();
      const before = runs.payment ?? 0;
      const res = await http().post('/misc/payment').set('Idempotency-Key', key).set('content-type', 'application/json').send(nested(3000)).expect(400);
      expect(res.headers['content-type']).toMatch(PROBLEM);
      expect(res.body).toMatchObject({ status: 400, code: 'idempotency_body_too_deep' });
      expect(res.body.detail).toContain('64 levels');
      expect(runs.payment ?? 0).toBe(before);
      expect(claim).not.toHaveBeenCalled();
      expect(harness.named('idempotency_rejected').at(-1)).toMatchObject({ status: 400, detail: 'idempotency_body_too_deep' });
      // nothing was stored: the same key with a sound body runs the handler
      const sound = await http().post('/misc/payment').set('Idempotency-Key', key).send({ amount: 5 }).expect(201);
      expect(sound.body.n).toBe(before + 1);
    });

    it('applies the route limits: depth 8 passes, depth 9 is 400, a body over maxBodyBytes is 413', async () => {
      await http().post('/misc/small').set('Idempotency-Key', newKey()).set('content-type', 'application/json').send(nested(8)).expect(201);
      const deep = await http().post('/misc/small').set('Idempotency-Key', newKey()).set('content-type', 'application/json').send(nested(9)).expect(400);
      expect(deep.body).toMatchObject({ code: 'idempotency_body_too_deep' });
      const before = runs.small ?? 0;
      const large = await http().post('/misc/small').set('Idempotency-Key', newKey()).send({ text: 'x'.repeat(1_000) }).expect(413);
      expect(large.headers['content-type']).toMatch(PROBLEM);
      expect(large.body).toMatchObject({ status: 413, code: 'idempotency_body_too_large' });
      expect(runs.small ?? 0).toBe(before);
    });
  });

  describe('store unreachable', () => {
    it('answers 503 idempotency_store_unavailable with Retry-After and does not run the handler', async () => {
      store.down = true;
      const before = runs.create ?? 0;
      const res = await http().post('/reports').set('Idempotency-Key', newKey()).send({ title: 'x' }).expect(503);
      expect(res.headers['content-type']).toMatch(PROBLEM);
      expect(res.headers['retry-after']).toBe('1');
      expect(res.body).toMatchObject({ status: 503, code: 'idempotency_store_unavailable' });
      expect(runs.create ?? 0).toBe(before);
      expect(harness.named('idempotency_store_error').at(-1)).toMatchObject({ detail: 'claim', status: 503 });
    });

    it('runs the handler without idempotency on a failOpen route', async () => {
      store.down = true;
      const res = await http().post('/misc/fail-open').set('Idempotency-Key', newKey()).expect(201);
      expect(res.body.n).toBeGreaterThan(0);
    });
  });

  it('hashes keys in events (logKeys is off)', async () => {
    const key = newKey();
    await http().post('/misc/unscoped').set('Idempotency-Key', key).expect(201);
    const executed = harness.named('idempotency_executed').at(-1)!;
    expect(executed).toMatchObject({ policy: 'POST /misc/unscoped', status: 201, outcome: 'stored' });
    expect(executed.key).toMatch(/^sha256:[0-9a-f]{12}$/);
    expect(JSON.stringify(harness.events)).not.toContain(key);
  });
});
