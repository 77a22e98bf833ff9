import { existsSync } from 'node:fs'
import Database from 'better-sqlite3'
import { type ForeignKey, readForeignKeys } from '../repository/foreign-keys.js'
import { type ColumnType, quoteIdent, typeFromSql } from '../repository/model-definition.js'
import { configError } from './load-config.js'

/** A column as the database declares it. */
export interface TableColumn {
  name: string
  /** The declared SQL type, as written (`INTEGER`, `TEXT`, `` for none). */
  declared: string
  /** How the repository converts its values. */
  type: ColumnType
  notNull: boolean
  /** Has a default value. */
  hasDefault: boolean
  /** Position in the primary key (1-based), 0 when not part of it. */
  pk: number
}

export interface TableSchema {
  name: string
  columns: TableColumn[]
  rows: number
  /** `table` for an ordinary table, `virtual` for a virtual table (FTS, R-tree…). */
  kind: 'table' | 'virtual'
  withoutRowid: boolean
  foreignKeys: ForeignKey[]
}

/** The user tables of a database and their columns, read without writing anything. */
export interface DatabaseSchema {
  file: string
  tables: Map<string, TableSchema>
}

interface XInfo {
  name: string
  type: string
  notnull: number
  dflt_value: unknown
  pk: number
  hidden: number
}

/**
 * Reads a database's tables (not meshmirror's own `_meshmirror_*`, not
 * SQLite's) through a read-only connection: nothing is created or written.
 * `source` names where the path came from in errors (the config file).
 */
export function readDatabaseSchema(file: string, source: string, key = 'database'): DatabaseSchema {
  if (!existsSync(file)) {
    throw configError(
      source,
      key,
      `no database at ${file}. meshmirror mirrors an existing database: check the path (relative paths are resolved against the config file's directory).`,
    )
  }
  let db: Database.Database
  try {
    db = new Database(file, { readonly: true, fileMustExist: true })
  } catch (error) {
    throw configError(source, key, `${file} cannot be opened: ${(error as Error).message}`, error)
  }
  try {
    // Shadow tables hold a virtual table's data: they are the virtual table's, not the app's.
    const list = (db.prepare('PRAGMA table_list').all() as { schema: string; name: string; type: string; wr: number }[])
      .filter(
        (t) =>
          t.schema === 'main' &&
          (t.type === 'table' || t.type === 'virtual') &&
          !t.name.startsWith('sqlite_') &&
          !t.name.startsWith('_meshmirror_'),
      )
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    const tables = new Map<string, TableSchema>()
    for (const { name, type, wr } of list) {
      const info = (db.prepare(`PRAGMA table_xinfo(${quoteIdent(name)})`).all() as XInfo[]).filter(
        (c) => c.hidden === 0,
      )
      const rows = db
        .prepare(`SELECT count(*) FROM ${quoteIdent(name)}`)
        .pluck()
        .get() as number
      tables.set(name, {
        name,
        rows,
        kind: type === 'virtual' ? 'virtual' : 'table',
        withoutRowid: wr === 1,
        foreignKeys: type === 'virtual' ? [] : readForeignKeys(db, name),
        columns: info.map((c) => ({
          name: c.name,
          declared: c.type,
          type: typeFromSql(c.type),
          notNull: c.notnull === 1,
          hasDefault: c.dflt_value !== null,
          pk: c.pk,
        })),
      })
    }
    return { file, tables }
  } catch (error) {
    throw configError(source, key, `${file} cannot be read as a SQLite database: ${(error as Error).message}`, error)
  } finally {
    db.close()
  }
}
