import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ResilienceModule } from 'nest-resilience';
import { IdempotencyRecord, TypeOrmIdempotencyStore, idempotencyMigrations } from 'nest-resilience/typeorm';
import { DataSource } from 'typeorm';
import { PaymentsController } from './payments.controller.js';

@Module({
  imports: [
    TypeOrmModule.forRoot({
      type: 'postgres',
      url: process.env.DATABASE_URL,
      entities: [IdempotencyRecord /* , your entities */],
      migrations: [...idempotencyMigrations /* , your migrations */],
      migrationsRun: true, // creates the idempotency_records table at start-up
      connectTimeoutMS: 2_000, // an unreachable database answers 503 quickly instead of hanging
      extra: { max: 20, query_timeout: 5_000 }, // pool size (see "Sizing the database pool") and a statement bound
    }),
    ResilienceModule.forRootAsync({
      inject: [DataSource], // the DataSource TypeOrmModule created
      useFactory: (dataSource: DataSource) => ({
        idempotency: { store: new TypeOrmIdempotencyStore(dataSource), purgeInterval: 60_000 },
      }),
    }),
  ],
  controllers: [PaymentsController],
})
export class AppModule {}
