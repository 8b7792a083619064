// A second connection to a SQLite file that takes its write lock (`BEGIN IMMEDIATE`) and holds it
// until released: what another process's long write transaction (a migration, a backup, a batch
// job) looks like to the app's connection.
import { createRequire } from 'node:module';

interface Connection {
  exec(sql: string): void;
  close(): void;
  readonly inTransaction: boolean;
}

const openDatabase = createRequire(import.meta.url)('better-sqlite3') as new (file: string, options?: { timeout?: number }) => Connection;

/** The write lock of one SQLite file, taken and released by a connection of its own. */
export interface SqliteWriteLock {
  /** Takes the write lock (`BEGIN IMMEDIATE`); throws SQLITE_BUSY when another connection holds it. */
  hold(): void;
  /** Ends the holding transaction (nothing was written). */
  release(): void;
  readonly held: boolean;
  close(): void;
}

/** Opens a connection of its own on `file` (busy timeout 0: it never waits). */
export function sqliteWriteLock(file: string): SqliteWriteLock {
  const connection = new openDatabase(file, { timeout: 0 });
  return {
    hold: () => connection.exec('BEGIN IMMEDIATE'),
    release: () => {
      if (connection.inTransaction) connection.exec('ROLLBACK');
    },
    get held() {
      return connection.inTransaction;
    },
    close: () => {
      if (connection.inTransaction) connection.exec('ROLLBACK');
      connection.close();
    },
  };
}
