import { Injectable } from '@nestjs/common';
import {
  DataSource,
  type EntityManager,
  type EntitySubscriberInterface,
  type QueryRunner,
  type TransactionCommitEvent,
  type TransactionRollbackEvent,
} from 'typeorm';

/**
 * Runs work after the transaction of an `EntityManager` commits, and forgets it on rollback.
 * Background jobs started from inside a transaction must not run before the rows they read are
 * visible (or at all, if the transaction rolls back).
 */
@Injectable()
export class AfterCommit implements EntitySubscriberInterface {
  private readonly pending = new WeakMap<QueryRunner, Array<() => void>>();

  constructor(dataSource: DataSource) {
    dataSource.subscribers.push(this);
  }

  /** Schedules `task` after `manager`'s transaction commits; right away when there is no transaction. */
  run(manager: EntityManager, task: () => void): void {
    const runner = manager.queryRunner;
    if (!runner?.isTransactionActive) {
      setImmediate(task);
      return;
    }
    const tasks = this.pending.get(runner) ?? [];
    tasks.push(task);
    this.pending.set(runner, tasks);
  }

  afterTransactionCommit(event: TransactionCommitEvent): void {
    // A released savepoint also broadcasts a commit: wait for the outermost one.
    if (event.queryRunner.isTransactionActive) return;
    const tasks = this.pending.get(event.queryRunner);
    this.pending.delete(event.queryRunner);
    for (const task of tasks ?? []) setImmediate(task);
  }

  afterTransactionRollback(event: TransactionRollbackEvent): void {
    if (event.queryRunner.isTransactionActive) return;
    this.pending.delete(event.queryRunner);
  }
}
