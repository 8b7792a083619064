import { Module, RequestMethod } from '@nestjs/common';
import { LoggerModule } from 'nestjs-pino';
import { ResilienceModule } from 'nest-resilience';
import { pinoHttp } from './pino-http.options.js';

@Module({
  imports: [
    LoggerModule.forRoot({
      pinoHttp,
      forRoutes: [{ path: '{*splat}', method: RequestMethod.ALL }], // needed on Fastify
    }),
    ResilienceModule.forRoot(),
  ],
})
export class AppModule {}
