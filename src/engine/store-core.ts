import type Database from 'better-sqlite3'
import type { Logger } from '../logger.js'
import type { Document } from '../mesh/document.js'
import type { WalCheckpointer } from '../util/wal-checkpointer.js'
import type { ConflictLog } from './conflict-log.js'
import type { HybridClock } from './hlc.js'
import type { ObserverHub } from './observers.js'
import type { SiteId, VersionVector } from './types.js'

/** A stored row of the `docs` table. */
export interface DocRow {
  seq: number
  doc: string | null
  meta: string
}

/** Prepared statements on one connection. */
export interface Statements {
  getRow: Database.Statement<[string, string], DocRow>
  /** Rows of a collection by a JSON array of ids. */
  getRows: Database.Statement<[string, string], DocRow & { id: string }>
  getDoc: Database.Statement<[string, string], { doc: string | null }>
  putRow: Database.Statement<[number, string, string, string | null, string]>
  /** Inserts a row unless its collection and id are taken (changes is then 0). */
  insertRow: Database.Statement<[number, string, string, string | null, string]>
  /**
   * `insertRow` for several rows in one statement, by how many (each of
   * `INSERT_ROWS`): the arguments of each row in turn.
   */
  insertRows: ReadonlyMap<number, Database.Statement<unknown[]>>
  /** A savepoint around one `insertRows`, to take it back when it skipped a row. */
  insertMark: Database.Statement<[]>
  insertKeep: Database.Statement<[]>
  insertUndo: Database.Statement<[]>
  putVersion: Database.Statement<[string, number]>
  putPeer: Database.Statement<[string, number]>
  putClock: Database.Statement<[string]>
  /** Rows after a sequence, up to another, that hold a version newer than a JSON version vector's. */
  changesFor: Database.Statement<
    [{ after: number; upTo: number; vv: string }],
    { seq: number; collection: string; id: string; doc: string | null; meta: string }
  >
}

/** Row counts of the multi-row inserts (`Statements.insertRows`), largest first. */
export const INSERT_ROWS = [64, 8] as const

export function prepareStatements(db: Database.Database): Statements {
  const insert = 'INSERT INTO docs (seq, collection, id, doc, meta) VALUES'
  const onConflict = 'ON CONFLICT (collection, id) DO NOTHING'
  return {
    getRow: db.prepare('SELECT seq, doc, meta FROM docs WHERE collection = ? AND id = ?'),
    getRows: db.prepare(
      'SELECT id, seq, doc, meta FROM docs WHERE collection = ? AND id IN (SELECT value FROM json_each(?))',
    ),
    getDoc: db.prepare('SELECT doc FROM docs WHERE collection = ? AND id = ?'),
    putRow: db.prepare('INSERT OR REPLACE INTO docs (seq, collection, id, doc, meta) VALUES (?, ?, ?, ?, ?)'),
    insertRow: db.prepare(`${insert} (?, ?, ?, ?, ?) ${onConflict}`),
    insertRows: new Map(
      INSERT_ROWS.map((n) => [
        n,
        db.prepare<unknown[]>(`${insert} ${Array(n).fill('(?, ?, ?, ?, ?)').join(', ')} ${onConflict}`),
      ]),
    ),
    insertMark: db.prepare('SAVEPOINT insert_rows'),
    insertKeep: db.prepare('RELEASE insert_rows'),
    insertUndo: db.prepare('ROLLBACK TO insert_rows'),
    putVersion: db.prepare(
      'INSERT INTO versions (site, seq) VALUES (?, ?) ON CONFLICT (site) DO UPDATE SET seq = max(seq, excluded.seq)',
    ),
    putPeer: db.prepare(
      'INSERT INTO peers (site, cursor) VALUES (?, ?) ON CONFLICT (site) DO UPDATE SET cursor = excluded.cursor',
    ),
    putClock: db.prepare("INSERT OR REPLACE INTO store_meta (key, value) VALUES ('clock', ?)"),
    // Site ids are [A-Za-z0-9_-]: safe inside a quoted JSON path.
    changesFor: db.prepare(
      `SELECT seq, collection, id, doc, meta FROM docs WHERE seq > @after AND seq <= @upTo
       AND EXISTS (SELECT 1 FROM json_each(meta, '$.v') AS e
                   WHERE e.value > coalesce(json_extract(@vv, '$."' || e.key || '"'), 0))
       ORDER BY seq`,
    ),
  }
}

/** The state every part of one open store shares. */
export interface StoreCore {
  readonly site: SiteId
  readonly dir: string
  readonly writer: Database.Database
  readonly reader: Database.Database
  readonly w: Statements
  readonly r: Statements
  readonly clock: HybridClock
  readonly observers: ObserverHub
  readonly logger: Logger
  readonly maxDocumentBytes: number
  /** Where losing versions are recorded. */
  readonly conflictLog: ConflictLog
  /** Runs WAL checkpoints off the event loop (absent with `checkpoints: 'inline'`). */
  readonly checkpointer: WalCheckpointer | undefined
  /** Collections whose concurrent field updates are recorded too (create/create collisions always are). */
  readonly recordConflicts: ReadonlySet<string>
  /** Wall time, for when a conflict was recorded. */
  readonly now: () => number
  /** Latest sequence assigned (may be ahead of what is committed while a transaction is open). */
  seq: number
  /** Latest committed sequence: what the reader connection sees. */
  committedSeq: number
  /** Committed version vector. */
  readonly vv: VersionVector
  remoteApplied: number
}

/**
 * Where to read committed data now. Between transactions, the writer
 * connection: it sees exactly what is committed, and its cache (the larger)
 * holds what was just written, where a commit makes the reader connection's
 * cache start over. While a transaction is open (a caller awaiting in
 * `transaction`), the reader connection, which sees only what is committed.
 */
export function committedReads(core: StoreCore): { db: Database.Database; s: Statements; conn: 'r' | 'w' } {
  return core.writer.inTransaction
    ? { db: core.reader, s: core.r, conn: 'r' }
    : { db: core.writer, s: core.w, conn: 'w' }
}

/** Parses a stored document. */
export function parseDoc(json: string | null): Document | null {
  return json === null ? null : (JSON.parse(json) as Document)
}
