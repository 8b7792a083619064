import { Table, TableForeignKey, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/** Creates `accounts` and `reports`; written with the QueryRunner API so it runs on SQLite and PostgreSQL. */
export class CreateAccountsAndReports1767000000000 implements MigrationInterface {
  name = 'CreateAccountsAndReports1767000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    // The driver knows its own timestamp type and "now()" spelling (datetime/datetime('now') on SQLite).
    const { createDate, createDateDefault } = queryRunner.connection.driver.mappedDataTypes;
    const timestamp = (name: string) => ({ name, type: String(createDate), default: String(createDateDefault) });
    await queryRunner.createTable(
      new Table({
        name: 'accounts',
        columns: [
          { name: 'id', type: 'varchar', length: '64', isPrimary: true },
          { name: 'credits', type: 'integer' },
          timestamp('created_at'),
        ],
        checks: [{ name: 'chk_accounts_credits_not_negative', expression: 'credits >= 0' }],
      }),
    );
    await queryRunner.createTable(
      new Table({
        name: 'reports',
        columns: [
          { name: 'id', type: 'varchar', length: '36', isPrimary: true },
          { name: 'account_id', type: 'varchar', length: '64' },
          { name: 'topic', type: 'varchar', length: '200' },
          { name: 'status', type: 'varchar', length: '16' },
          { name: 'text', type: 'text', isNullable: true },
          { name: 'reason', type: 'varchar', length: '32', isNullable: true },
          { name: 'attempts', type: 'integer', isNullable: true },
          timestamp('created_at'),
          timestamp('updated_at'),
        ],
        foreignKeys: [
          new TableForeignKey({ columnNames: ['account_id'], referencedTableName: 'accounts', referencedColumnNames: ['id'] }),
        ],
        indices: [new TableIndex({ name: 'idx_reports_account_id', columnNames: ['account_id'] })],
      }),
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('reports');
    await queryRunner.dropTable('accounts');
  }
}
