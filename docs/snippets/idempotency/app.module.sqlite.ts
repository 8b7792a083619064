import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ResilienceModule } from 'nest-resilience';
import { IdempotencyRecord, TypeOrmIdempotencyStore } from 'nest-resilience/typeorm';
import { DataSource } from 'typeorm';
import { Payment } from './payment.entity.js';
import { TransactionalPaymentsController } from './transactional-payments.controller.js';

@Module({
  imports: [
    TypeOrmModule.forRoot({
      type: 'better-sqlite3',
      database: 'app.sqlite', // a file: WAL needs one
      enableWAL: true,
      timeout: 1_000, // how long YOUR statements wait for the write lock (blocking); the store has its own lockTimeout
      entities: [IdempotencyRecord, Payment],
      synchronize: true, // or run idempotencyMigrations
    }),
    ResilienceModule.forRootAsync({
      inject: [DataSource],
      useFactory: (dataSource: DataSource) => ({ idempotency: { store: new TypeOrmIdempotencyStore(dataSource) } }),
    }),
  ],
  controllers: [TransactionalPaymentsController],
})
export class AppModule {}
