import 'reflect-metadata';
import { Controller, Get, Head, HttpCode, Options, Post, Put } from '@nestjs/common';
import { HTTP_CODE_METADATA, METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants.js';
import { describe, expect, it } from 'vitest';
import { IDEMPOTENT_METADATA } from '../resilience.constants.js';
import { Idempotent, isIdempotentHandler } from './idempotent.decorator.js';
import { runIdempotentExecution, type IdempotencyExecution } from './transaction-context.js';

const execution = (): IdempotencyExecution => ({ handlerEntered: false, handlerSucceeded: false, running: 0 });

describe('@Idempotent() on a method', () => {
  class Reports {
    factor = 2;

    @Idempotent({ lease: 5_000 })
    @Post('reports')
    @HttpCode(202)
    create(a: number, b: number) {
      return (a + b) * this.factor;
    }

    @HttpCode(204)
    @Post('later')
    @Idempotent()
    async later() {
      return 'done';
    }
  }

  it('keeps the name, the length, `this` and every metadata key of the original', () => {
    const handler = Reports.prototype.create;
    expect(handler.name).toBe('create');
    expect(handler.length).toBe(2);
    expect(new Reports().create(1, 2)).toBe(6);
    expect(Reflect.getMetadata(PATH_METADATA, handler)).toBe('reports');
    expect(Reflect.getMetadata(HTTP_CODE_METADATA, handler)).toBe(202);
    expect(Reflect.getMetadata(IDEMPOTENT_METADATA, handler)).toEqual({ lease: 5_000 });
    expect(isIdempotentHandler(handler)).toBe(true);
  });

  it('sees metadata of decorators applied after it, whatever the order', () => {
    const handler = Reports.prototype.later;
    expect(Reflect.getMetadata(HTTP_CODE_METADATA, handler)).toBe(204);
    expect(Reflect.getMetadata(PATH_METADATA, handler)).toBe('later');
  });

  it('marks "handler entered" and "succeeded" only inside an idempotent execution, tracking running promises', async () => {
    const state = execution();
    let idle = 0;
    state.onIdle = () => idle++;
    const pending = runIdempotentExecution(state, () => new Reports().later());
    expect(state.handlerEntered).toBe(true);
    expect(state.running).toBe(1);
    await pending;
    expect(state.running).toBe(0);
    expect(state.handlerSucceeded).toBe(true);
    expect(idle).toBe(1);
    expect(new Reports().create(1, 1)).toBe(4); // outside: plain call, nothing to mark
  });

  it('does not report success for a handler that throws or rejects', async () => {
    class Failing {
      @Idempotent()
      @Post()
      sync() {
        throw new Error('sync');
      }

      @Idempotent()
      @Post()
      async rejects() {
        throw new Error('async');
      }
    }
    const sync = execution();
    expect(() => runIdempotentExecution(sync, () => new Failing().sync())).toThrow('sync');
    expect(sync).toMatchObject({ handlerEntered: true, handlerSucceeded: false, running: 0 });
    const rejected = execution();
    await expect(runIdempotentExecution(rejected, () => new Failing().rejects())).rejects.toThrow('async');
    expect(rejected).toMatchObject({ handlerEntered: true, handlerSucceeded: false, running: 0 });
  });
});

describe('@Idempotent() on a class', () => {
  class Base {
    @Put('inherited')
    inherited() {
      return 'base';
    }
  }

  @Controller('orders')
  @Idempotent({ required: false })
  class Orders extends Base {
    @Get()
    list() {
      return [];
    }

    @Head()
    head() {
      return undefined;
    }

    @Options()
    options() {
      return undefined;
    }

    @Post()
    create() {
      return 'created';
    }

    helper() {
      return 'not a route';
    }
  }

  it('records the options on the class', () => {
    expect(Reflect.getMetadata(IDEMPOTENT_METADATA, Orders)).toEqual({ required: false });
  });

  it('wraps unsafe-method routes (inherited ones too) and leaves GET, HEAD, OPTIONS and plain methods alone', () => {
    expect(isIdempotentHandler(Orders.prototype.create)).toBe(true);
    expect(isIdempotentHandler(Orders.prototype.inherited)).toBe(true);
    expect(new Orders().inherited()).toBe('base');
    expect(Reflect.getMetadata(METHOD_METADATA, Orders.prototype.inherited)).toBeDefined();
    expect(isIdempotentHandler(Orders.prototype.list)).toBe(false);
    expect(isIdempotentHandler(Orders.prototype.head)).toBe(false);
    expect(isIdempotentHandler(Orders.prototype.options)).toBe(false);
    expect(isIdempotentHandler(Orders.prototype.helper)).toBe(false);
    expect(isIdempotentHandler(Base.prototype.inherited)).toBe(false);
  });
});
