// For the store's tests: the rows of a query on a store file, read past the store (a read-only
// DuckDB instance of its own, opened and closed around the query).

import { DuckDBInstance } from '@duckdb/node-api';

export async function fileRows(file: string, sql: string): Promise<unknown[][]> {
  const inst = await DuckDBInstance.create(file, { access_mode: 'READ_ONLY' });
  try {
    const c = await inst.connect();
    try {
      return (await c.runAndReadAll(sql)).getRows();
    } finally {
      c.closeSync();
    }
  } finally {
    inst.closeSync();
  }
}
