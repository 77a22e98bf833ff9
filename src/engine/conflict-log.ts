import Database from 'better-sqlite3'
import { ErrorCode, StorageError, ValidationError } from '../errors.js'
import type { ConflictKind, ConflictQuery, ConflictRecord, ConflictVersion } from '../mesh/conflict.js'
import type { JsonObject } from '../mesh/document.js'
import { assertCollection, positiveLimit } from '../mesh/validate.js'
import { statementCache } from '../util/statement-cache.js'
import { clockSite, clockWall } from './hlc.js'

/** One side of a conflict as found by a merge. */
export interface FoundVersion {
  clock: string
  content: JsonObject
}

/** A conflict found by a merge, before it is recorded. */
export interface FoundConflict {
  collection: string
  id: string
  kind: ConflictKind
  field?: string
  winner: FoundVersion
  loser: FoundVersion
}

interface ConflictRow {
  seq: number
  collection: string
  id: string
  kind: ConflictKind
  field: string
  winner_clock: string
  winner: string
  loser_clock: string
  loser: string
  detected_at: string
}

const COLUMNS = 'seq, collection, id, kind, field, winner_clock, winner, loser_clock, loser, detected_at'

/** The `conflicts` table of one store (see `CONFLICTS_DDL`). */
export class ConflictLog {
  private readonly insert: Database.Statement

  constructor(writer: Database.Database) {
    this.insert = writer.prepare(
      `INSERT OR IGNORE INTO conflicts (collection, id, kind, field, winner_site, winner_clock, winner, loser_site, loser_clock, loser, detected_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    )
  }

  /**
   * Records a conflict unless this pair of versions was recorded already
   * (a re-delivery, a restart, a catch-up). Returns the new record, or
   * undefined when it was not new.
   */
  record(c: FoundConflict, now: number): ConflictRecord | undefined {
    const detectedAt = new Date(now).toISOString()
    const winner = JSON.stringify(c.winner.content)
    const loser = JSON.stringify(c.loser.content)
    const info = this.insert.run(
      c.collection,
      c.id,
      c.kind,
      c.field ?? '',
      clockSite(c.winner.clock),
      c.winner.clock,
      winner,
      clockSite(c.loser.clock),
      c.loser.clock,
      loser,
      detectedAt,
    )
    if (info.changes === 0) return undefined
    return toRecord({
      seq: Number(info.lastInsertRowid),
      collection: c.collection,
      id: c.id,
      kind: c.kind,
      field: c.field ?? '',
      winner_clock: c.winner.clock,
      winner,
      loser_clock: c.loser.clock,
      loser,
      detected_at: detectedAt,
    })
  }
}

/** Checks a conflict query: `INVALID_COLLECTION` or `INVALID_OPTIONS` before anything is read. */
export function checkConflictQuery(query: ConflictQuery | undefined): { collection?: string; limit: number } {
  if (query !== undefined && (typeof query !== 'object' || query === null)) {
    throw new ValidationError(ErrorCode.INVALID_OPTIONS, 'conflicts: the query must be an object.')
  }
  const out: { collection?: string; limit: number } = { limit: positiveLimit(query?.limit, 1000) }
  if (query?.collection !== undefined) {
    assertCollection(query.collection)
    out.collection = query.collection
  }
  return out
}

/** The latest conflicts first. Reads nothing when the store has no conflicts table (made by an older version). */
export function listConflicts(db: Database.Database, query?: ConflictQuery): ConflictRecord[] {
  const q = checkConflictQuery(query)
  if (!hasTable(db)) return []
  const where = q.collection === undefined ? '' : 'WHERE collection = ?'
  const params: unknown[] = q.collection === undefined ? [q.limit] : [q.collection, q.limit]
  const rows = statement(db, `SELECT ${COLUMNS} FROM conflicts ${where} ORDER BY seq DESC LIMIT ?`).all(
    ...params,
  ) as ConflictRow[]
  return rows.map(toRecord)
}

export function countConflicts(db: Database.Database, query?: Pick<ConflictQuery, 'collection'>): number {
  const q = checkConflictQuery(query)
  if (!hasTable(db)) return 0
  return (
    q.collection === undefined
      ? statement(db, 'SELECT count(*) FROM conflicts').pluck().get()
      : statement(db, 'SELECT count(*) FROM conflicts WHERE collection = ?').pluck().get(q.collection)
  ) as number
}

// Read on every status snapshot: statements are prepared once per connection,
// and a table once found is not looked up again.
const statements = new WeakMap<Database.Database, (sql: string) => Database.Statement>()
const withTable = new WeakSet<Database.Database>()

function statement(db: Database.Database, sql: string): Database.Statement {
  let cache = statements.get(db)
  if (!cache) {
    cache = statementCache(db)
    statements.set(db, cache)
  }
  return cache(sql)
}

function hasTable(db: Database.Database): boolean {
  if (withTable.has(db)) return true
  const found =
    statement(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'conflicts'").get() !== undefined
  if (found) withTable.add(db)
  return found
}

function toRecord(r: ConflictRow): ConflictRecord {
  return {
    seq: r.seq,
    collection: r.collection,
    id: r.id,
    kind: r.kind,
    ...(r.field === '' ? {} : { field: r.field }),
    winner: version(r.winner_clock, r.winner),
    loser: version(r.loser_clock, r.loser),
    detectedAt: r.detected_at,
  }
}

function version(clock: string, content: string): ConflictVersion {
  return {
    site: clockSite(clock),
    clock,
    writtenAt: new Date(clockWall(clock)).toISOString(),
    content: JSON.parse(content) as JsonObject,
  }
}

/** What a store file holds of conflicts. */
export interface StoreConflicts {
  /** The store's site id. */
  siteId: string | undefined
  /** How many there are (in the query's collection), whatever the limit. */
  total: number
  /** The latest first, up to the query's limit. */
  conflicts: ConflictRecord[]
}

/**
 * Reads the conflicts of a store file from outside: a read-only connection,
 * no lock, so it works while a running peer holds the directory. Throws
 * `STORE_INCOMPATIBLE` for a file that is not a builtin store.
 */
export function readStoreConflicts(file: string, query?: ConflictQuery): StoreConflicts {
  const q = checkConflictQuery(query)
  let db: Database.Database | undefined
  try {
    db = new Database(file, { readonly: true, fileMustExist: true })
    db.pragma('busy_timeout = 5000')
    const site = db.prepare("SELECT value FROM store_meta WHERE key = 'site_id'").pluck().get() as string | undefined
    return { siteId: site, total: countConflicts(db, q), conflicts: listConflicts(db, q) }
  } catch (cause) {
    if (cause instanceof ValidationError) throw cause
    throw new StorageError(
      ErrorCode.STORE_INCOMPATIBLE,
      `Cannot read the mesh store ${file}: ${(cause as Error).message}`,
      { cause, details: { file } },
    )
  } finally {
    db?.close()
  }
}
