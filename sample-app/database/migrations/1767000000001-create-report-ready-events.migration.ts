import { Table, TableForeignKey, type MigrationInterface, type QueryRunner } from 'typeorm';

/** Creates `report_ready_events`, the rows of the "report ready" consumer (SQLite and PostgreSQL). */
export class CreateReportReadyEvents1767000000001 implements MigrationInterface {
  name = 'CreateReportReadyEvents1767000000001';

  async up(queryRunner: QueryRunner): Promise<void> {
    const { createDate, createDateDefault } = queryRunner.connection.driver.mappedDataTypes;
    await queryRunner.createTable(
      new Table({
        name: 'report_ready_events',
        columns: [
          { name: 'event_id', type: 'varchar', length: '64', isPrimary: true },
          { name: 'report_id', type: 'varchar', length: '36' },
          { name: 'via', type: 'varchar', length: '16' },
          { name: 'recorded_at', type: String(createDate), default: String(createDateDefault) },
        ],
        foreignKeys: [new TableForeignKey({ columnNames: ['report_id'], referencedTableName: 'reports', referencedColumnNames: ['id'] })],
      }),
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('report_ready_events');
  }
}
