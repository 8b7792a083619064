import 'reflect-metadata';
import { Controller, Get, Head, HttpCode, Options, Post, Put } from '@nestjs/common';
import { HTTP_CODE_METADATA, METHOD_METADATA, PATH_METADATA, ROUTE_ARGS_METADATA } from '@nestjs/common/constants.js';
import { describe, expect, it } from 'vitest';
import { IDEMPOTENT_METADATA } from '../../../../lib/resilience.constants.js';
import { Idempotent } from '../../../../lib/idempotency/idempotent.decorator.js';
import { boundMethodOf, RESILIENCE_ENGINE, RouteInvocation, type BoundMethod } from '../../../../lib/engine/binding/bound-method.js';

const isBound = (fn: Function) => boundMethodOf(fn) !== undefined;

describe('a decorated method (@Idempotent() on a method)', () => {
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
    expect(isBound(handler)).toBe(true);
  });

  it('sees metadata of decorators applied after it, whatever the order', () => {
    const handler = Reports.prototype.later;
    expect(Reflect.getMetadata(HTTP_CODE_METADATA, handler)).toBe(204);
    expect(Reflect.getMetadata(PATH_METADATA, handler)).toBe('later');
  });

  it('puts a hidden route argument after every declared parameter, and strips it when no application is bound', () => {
    const method = boundMethodOf(Reports.prototype.create)!;
    expect(method.invocationIndex).toBe(2);
    const args = Reflect.getMetadata(ROUTE_ARGS_METADATA, Reports, 'create') as Record<string, { index: number }>;
    expect(Object.values(args).map((arg) => arg.index)).toEqual([2]);
    const context = {} as never;
    expect((new Reports().create as (...args: unknown[]) => number)(1, 2, new RouteInvocation(context))).toBe(6);
  });

  it('runs through the engine an application bound to the instance', () => {
    const reports = new Reports();
    const calls: unknown[][] = [];
    Object.defineProperty(reports, RESILIENCE_ENGINE, {
      value: {
        invoke: (self: Reports, method: BoundMethod, args: unknown[]) => {
          calls.push(args);
          return (method.original as (a: number, b: number) => number).apply(self, [args[0] as number, args[1] as number]) + 1;
        },
      },
    });
    expect(reports.create(1, 2)).toBe(7);
    expect(calls).toEqual([[1, 2]]);
  });
});

describe('a class-level decorator (@Idempotent() on a class)', () => {
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

  it('binds unsafe-method routes (inherited ones too) and leaves GET, HEAD, OPTIONS and plain methods alone', () => {
    expect(isBound(Orders.prototype.create)).toBe(true);
    expect(isBound(Orders.prototype.inherited)).toBe(true);
    expect(new Orders().inherited()).toBe('base');
    expect(Reflect.getMetadata(METHOD_METADATA, Orders.prototype.inherited)).toBeDefined();
    expect(isBound(Orders.prototype.list)).toBe(false);
    expect(isBound(Orders.prototype.head)).toBe(false);
    expect(isBound(Orders.prototype.options)).toBe(false);
    expect(isBound(Orders.prototype.helper)).toBe(false);
    expect(isBound(Base.prototype.inherited)).toBe(false);
  });
});
