import { Injectable } from '@nestjs/common';
import { Args, Field, Int, Mutation, ObjectType, Query, Resolver } from '@nestjs/graphql';
import { CircuitBreaker, Idempotent, Timeout } from 'nest-resilience';

@ObjectType()
export class Report {
  @Field()
  title!: string;
}

@Injectable()
export class ReportsService {
  async list(): Promise<Report[]> {
    return [];
  }

  async create(title: string): Promise<Report> {
    return { title };
  }

  async pay(invoiceId: string, amount: number): Promise<number> {
    return invoiceId.length > 0 ? amount : 0;
  }
}

// #region resolver
@Resolver(() => Report)
export class ReportsResolver {
  constructor(private readonly service: ReportsService) {}

  @Query(() => [Report])
  @Timeout(2_000)
  @CircuitBreaker()
  reports() {
    return this.service.list();
  }

  // keyed by the Idempotency-Key header of the GraphQL HTTP request
  @Mutation(() => Report)
  @Idempotent()
  createReport(@Args('title') title: string) {
    return this.service.create(title);
  }

  // or by the mutation's own arguments
  @Mutation(() => Int)
  @Idempotent({ key: (args: { invoiceId: string }) => `invoice-${args.invoiceId}` })
  payInvoice(@Args('invoiceId') invoiceId: string, @Args('amount') amount: number) {
    return this.service.pay(invoiceId, amount);
  }
}
// #endregion resolver
