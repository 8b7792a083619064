// The rows the multi-instance fixture's handlers wrote (one per run of a handler), read from
// outside the app after a fault: what was lost and what ran twice is counted from them.
import pg from 'pg';

/** Rows of `multi_instance_reports`: the key of each row id, and how many rows each key has. */
export interface ReportRows {
  readonly byId: Map<number, string>;
  readonly perKey: Map<string, number>;
}

/** Every row whose key matches `keyLike` (SQL LIKE), on a fresh connection to `url`. */
export async function readReportRows(url: string, keyLike = '%'): Promise<ReportRows> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ id: number; request_key: string }>('SELECT id, request_key FROM multi_instance_reports WHERE request_key LIKE $1', [keyLike]);
    const byId = new Map<number, string>();
    const perKey = new Map<string, number>();
    for (const row of rows) {
      byId.set(Number(row.id), row.request_key);
      perKey.set(row.request_key, (perKey.get(row.request_key) ?? 0) + 1);
    }
    return { byId, perKey };
  } finally {
    await client.end();
  }
}
