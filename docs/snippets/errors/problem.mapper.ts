import { Module } from '@nestjs/common';
import { ResilienceErrorMapper, ResilienceModule } from 'nest-resilience';

/** Answers a dependency's refusal with 424 instead of 502. */
export class ProblemMapper extends ResilienceErrorMapper {
  protected override upstreamRejected(error: unknown) {
    return this.problem({ status: 424, code: 'dependency_refused', detail: 'A partner refused the request.' }, error);
  }
}

@Module({ imports: [ResilienceModule.forRoot({ errorMapper: ProblemMapper })] })
export class AppModule {}
