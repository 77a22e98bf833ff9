import { mkdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { ErrorCode, StorageError } from '../errors.js'

/** The file inside a persistence directory that holds the builtin store. */
export const STORE_FILE = 'mesh.sqlite'
/** The on-disk format version this build reads and writes. */
export const SCHEMA_VERSION = 1

const DDL = `
CREATE TABLE IF NOT EXISTS docs (
  seq INTEGER PRIMARY KEY,
  collection TEXT NOT NULL,
  id TEXT NOT NULL,
  doc TEXT,
  meta TEXT NOT NULL,
  UNIQUE (collection, id)
);
CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS versions (site TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS peers (site TEXT PRIMARY KEY, cursor INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS indexes (collection TEXT NOT NULL, field TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (collection, field)) WITHOUT ROWID;
`

/**
 * Removed documents by collection, so that counting a collection's documents
 * reads two indexes, not every row. Created on every open, so stores made
 * before it get it (once, a pass over the table); a build without it keeps
 * it up to date as SQLite does any index.
 */
export const REMOVED_DDL = 'CREATE INDEX IF NOT EXISTS docs_removed ON docs (collection) WHERE doc IS NULL'

/**
 * Versions that lost a merge, kept for people to repair (see
 * `conflict-log.ts`). Local to this store, never replicated as such. Created
 * on every open, so stores made before it get it; a build without it
 * ignores it.
 */
export const CONFLICTS_DDL = `
CREATE TABLE IF NOT EXISTS conflicts (
  seq INTEGER PRIMARY KEY,
  collection TEXT NOT NULL,
  id TEXT NOT NULL,
  kind TEXT NOT NULL,
  field TEXT NOT NULL DEFAULT '',
  winner_site TEXT NOT NULL,
  winner_clock TEXT NOT NULL,
  winner TEXT NOT NULL,
  loser_site TEXT NOT NULL,
  loser_clock TEXT NOT NULL,
  loser TEXT NOT NULL,
  detected_at TEXT NOT NULL,
  UNIQUE (collection, id, kind, field, winner_clock, loser_clock)
);
`

export type Synchronous = 'off' | 'normal' | 'full'

/** Opens (creating if needed) the store database in `dir`: the writer connection and a read-only one. */
export function openDatabases(
  dir: string,
  synchronous: Synchronous,
): { writer: Database.Database; reader: Database.Database } {
  try {
    mkdirSync(dir, { recursive: true })
  } catch (cause) {
    throw new StorageError(
      ErrorCode.DIRECTORY_UNUSABLE,
      `Cannot create the mesh directory ${dir}: ${(cause as Error).message}`,
      {
        cause,
        details: { dir },
      },
    )
  }
  if (!statSync(dir).isDirectory()) {
    throw new StorageError(ErrorCode.DIRECTORY_UNUSABLE, `${dir} is not a directory.`, { details: { dir } })
  }
  const file = join(dir, STORE_FILE)
  let writer: Database.Database | undefined
  try {
    writer = new Database(file)
    writer.pragma('journal_mode = WAL')
    writer.pragma(`synchronous = ${synchronous}`)
    writer.pragma('busy_timeout = 5000')
    writer.pragma('cache_size = -32000')
    migrate(writer, file)
    const reader = new Database(file, { readonly: true })
    reader.pragma('busy_timeout = 5000')
    reader.pragma('cache_size = -16000')
    return { writer, reader }
  } catch (cause) {
    writer?.close()
    if (cause instanceof StorageError) throw cause
    const code = (cause as { code?: string }).code
    throw new StorageError(
      code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT'
        ? ErrorCode.STORE_INCOMPATIBLE
        : ErrorCode.DIRECTORY_UNUSABLE,
      `Cannot open the mesh store ${file}: ${(cause as Error).message}`,
      { cause, details: { file } },
    )
  }
}

function migrate(db: Database.Database, file: string): void {
  const hasDocs = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'store_meta'").get()
  if (hasDocs) {
    const row = db.prepare("SELECT value FROM store_meta WHERE key = 'schema_version'").get() as
      | { value: string }
      | undefined
    const version = Number(row?.value)
    if (version !== SCHEMA_VERSION) {
      throw new StorageError(
        ErrorCode.STORE_INCOMPATIBLE,
        `The mesh store ${file} has format version ${row?.value ?? 'unknown'}; this meshmirror reads version ${SCHEMA_VERSION}. Use a matching meshmirror version.`,
        { details: { file, version: row?.value } },
      )
    }
    if (!db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'conflicts'").get()) {
      db.exec(CONFLICTS_DDL)
    }
    db.exec(REMOVED_DDL)
    return
  }
  const other = db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'").get() as { n: number }
  if (other.n > 0) {
    throw new StorageError(
      ErrorCode.STORE_INCOMPATIBLE,
      `${file} is a SQLite database but not a meshmirror store. Point the mesh at its own directory.`,
      { details: { file } },
    )
  }
  db.exec('BEGIN')
  db.exec(DDL)
  db.exec(REMOVED_DDL)
  db.exec(CONFLICTS_DDL)
  db.prepare("INSERT INTO store_meta (key, value) VALUES ('schema_version', ?)").run(String(SCHEMA_VERSION))
  db.exec('COMMIT')
}

/** Reads a `store_meta` value. */
export function readMeta(db: Database.Database, key: string): string | undefined {
  const row = db.prepare('SELECT value FROM store_meta WHERE key = ?').get(key) as { value: string } | undefined
  return row?.value
}

/** Writes a `store_meta` value. */
export function writeMeta(db: Database.Database, key: string, value: string): void {
  db.prepare(
    'INSERT INTO store_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
  ).run(key, value)
}
