import pg from 'pg'
import { readPgTables } from '../postgres/pg-schema.js'
import { columnTypeOf } from '../postgres/pg-types.js'
import { pgConfig, redactUrl } from '../postgres/postgres-repository.js'
import { configError } from './load-config.js'
import type { DatabaseSchema, TableSchema } from './table-schema.js'

/**
 * Reads the tables of a Postgres database's schema (`public` unless told)
 * from the catalog, as a config sees a SQLite database's: columns with the
 * repository type they read as, primary keys, foreign keys. Writes nothing;
 * row counts are the planner's estimates. `source` names where the URL came
 * from in errors.
 */
export async function readPostgresSchema(
  url: string,
  source: string,
  key = 'database',
  schemaName = 'public',
): Promise<DatabaseSchema> {
  const shown = redactUrl(url)
  const client = new pg.Client({ ...pgConfig(url), connectionTimeoutMillis: 10_000 })
  try {
    await client.connect()
  } catch (error) {
    throw configError(source, key, `cannot connect to ${shown}: ${(error as Error).message}`, error)
  }
  try {
    const tables = await readPgTables(
      async (sql, params = []) => (await client.query<Record<string, string | null>>(sql, params)).rows,
      schemaName,
    )
    const out = new Map<string, TableSchema>()
    for (const t of tables.values()) {
      out.set(t.name, {
        name: t.name,
        rows: t.estimatedRows,
        kind: 'table',
        withoutRowid: false,
        foreignKeys: t.foreignKeys,
        columns: t.columns.map((c) => ({
          name: c.name,
          declared: c.sqlType,
          type: columnTypeOf(c.kind),
          notNull: c.notNull,
          hasDefault: c.hasDefault,
          pk: t.keys.indexOf(c.name) + 1,
        })),
      })
    }
    return { file: shown, tables: out }
  } catch (error) {
    throw configError(source, key, `${shown} cannot be read: ${(error as Error).message}`, error)
  } finally {
    await client.end().catch(() => undefined)
  }
}
