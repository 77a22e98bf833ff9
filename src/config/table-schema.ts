import { existsSync } from 'node:fs'
import Database from 'better-sqlite3'
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
    const names = db
      .prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '\\_meshmirror\\_%' ESCAPE '\\' ORDER BY name",
      )
      .pluck()
      .all() as string[]
    const tables = new Map<string, TableSchema>()
    for (const name of names) {
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
