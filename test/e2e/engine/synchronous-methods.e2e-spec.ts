import 'reflect-metadata';
import { Controller, Get, Injectable, type Type } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { CircuitBreaker, ResilienceModule, Retryable, Timeout } from 'nest-resilience';
import { Observable, of } from 'rxjs';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp } from '../../support/app.js';

// Each class lives in its own module scope so a refused one never reaches the accepted ones' app.

@Injectable()
class UnannotatedTotal {
  @Retryable()
  total() {
    return 42;
  }
}

@Injectable()
class AnnotatedCount {
  @Timeout(1_000)
  count(): number {
    return 1;
  }
}

@Injectable()
class UnannotatedPromise {
  @CircuitBreaker()
  load() {
    return Promise.resolve('loaded');
  }
}

@Injectable()
class AsynchronousMethods {
  @Retryable()
  async unannotated() {
    return 'async';
  }

  @Retryable()
  declared(): Promise<string> {
    return Promise.resolve('declared');
  }

  @Retryable()
  stream(): Observable<string> {
    return of('observable');
  }
}

/** Class-level decorators bind only visibly asynchronous methods: a synchronous helper stays synchronous. */
@Injectable()
@Retryable()
class ClassLevel {
  helper() {
    return 7;
  }

  async work() {
    return this.helper();
  }
}

@Controller('sync')
class SyncRouteController {
  /** Routes are exempt: Nest awaits whatever a handler returns. */
  @Get()
  @Retryable()
  get() {
    return { value: 1 };
  }
}

async function start(provider: Type) {
  const moduleRef = await Test.createTestingModule({ imports: [ResilienceModule.forRoot()], providers: [provider] }).compile();
  await moduleRef.init();
  return moduleRef;
}

describe('decorated synchronous provider methods are refused at start-up', () => {
  let close: (() => Promise<unknown>) | undefined;
  afterEach(async () => {
    await close?.();
    close = undefined;
  });

  it('refuses a method without a written return type that returns a plain value', async () => {
    await expect(start(UnannotatedTotal)).rejects.toThrow(
      'The resilience decorators on UnannotatedTotal.total run it through a pipeline that answers a Promise, but the method is neither async nor declares a Promise or Observable return type, so its callers would get a Promise where they expect a plain value. Make the method async (or declare its return type as Promise<…> or Observable<…>), or move the decorators to the async method that calls it.',
    );
  });

  it('refuses a method that declares a plain return type, naming it', async () => {
    await expect(start(AnnotatedCount)).rejects.toThrow('the method declares the return type Number, so its callers would get a Promise');
  });

  it('refuses a method that is not async and declares nothing, even when it happens to return a Promise (the rule is the declaration)', async () => {
    await expect(start(UnannotatedPromise)).rejects.toThrow('The resilience decorators on UnannotatedPromise.load run it through a pipeline');
  });

  it('accepts async methods and declared Promise or Observable return types, and runs them through the pipeline', async () => {
    const moduleRef = await start(AsynchronousMethods);
    close = () => moduleRef.close();
    const methods = moduleRef.get(AsynchronousMethods);
    await expect(methods.unannotated()).resolves.toBe('async');
    await expect(methods.declared()).resolves.toBe('declared');
    const values: string[] = [];
    await new Promise<void>((done) => methods.stream().subscribe({ next: (value) => values.push(value), complete: done }));
    expect(values).toEqual(['observable']);
  });

  it('leaves a synchronous method of a class-level decorated provider synchronous', async () => {
    const moduleRef = await start(ClassLevel);
    close = () => moduleRef.close();
    const instance = moduleRef.get(ClassLevel);
    expect(instance.helper()).toBe(7);
    await expect(instance.work()).resolves.toBe(7);
  });

  it('accepts a synchronous route handler: Nest awaits what it returns', async () => {
    const app = await createApp('express', { imports: [ResilienceModule.forRoot()], controllers: [SyncRouteController] });
    close = () => app.close();
    const response = await request(app.getHttpServer()).get('/sync').expect(200);
    expect(response.body).toEqual({ value: 1 });
  });
});
