import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { ErrorCode, StorageError, ValidationError } from '../errors.js'
import { contentHash } from '../mesh/content-hash.js'
import type { Document } from '../mesh/document.js'

/** The sidecar file, inside the Ditto persistence directory. */
export const CHANGE_LOG_FILE = 'meshmirror-ditto.sqlite'

/** One document's entry: the sequence of its latest noticed change. */
export interface LogEntry {
  id: string
  seq: number
  removed: boolean
}

/**
 * Ditto has no per-document change sequence, so this sidecar SQLite file
 * gives each document one: the local sequence number of the latest change
 * noticed, with the content hash seen then.
 *
 * Changes are noticed two ways. Local writes are noted right after their
 * Ditto commit (hash unknown yet: NULL). `reconcile` compares the content of
 * a whole collection with the stored hashes and gives a new sequence to every
 * document whose hash differs, appeared, or disappeared: that catches changes
 * that arrived by sync, and anything committed but not noted before a crash
 * (on open, entries whose hash is still unknown are re-sequenced for that
 * reason). Also kept here: the store's site id and the collections' counter
 * fields.
 */
export class ChangeLog {
  readonly site: string
  private seq: number
  private readonly db: Database.Database
  private readonly stmt: {
    upsert: Database.Statement<[string, string, number, string | null, number]>
    entry: Database.Statement<[string, string], { seq: number; hash: string | null; removed: number }>
    all: Database.Statement<[string], { id: string; hash: string | null; removed: number }>
    after: Database.Statement<[string, number], { id: string; seq: number; removed: number }>
    setHash: Database.Statement<[string, string, string]>
    setMeta: Database.Statement<[string, string]>
    tombstones: Database.Statement<[], { n: number }>
    collections: Database.Statement<[], { collection: string }>
  }

  private constructor(db: Database.Database) {
    this.db = db
    db.exec(`
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS docs (
        collection TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL, hash TEXT, removed INTEGER NOT NULL,
        PRIMARY KEY (collection, id)) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS docs_by_seq ON docs (collection, seq);
      CREATE TABLE IF NOT EXISTS counters (collection TEXT NOT NULL, field TEXT NOT NULL,
        PRIMARY KEY (collection, field)) WITHOUT ROWID;
    `)
    const meta = (key: string) =>
      (db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined)?.value
    this.stmt = {
      upsert: db.prepare(
        `INSERT INTO docs (collection, id, seq, hash, removed) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (collection, id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, removed = excluded.removed`,
      ),
      entry: db.prepare('SELECT seq, hash, removed FROM docs WHERE collection = ? AND id = ?'),
      all: db.prepare('SELECT id, hash, removed FROM docs WHERE collection = ?'),
      after: db.prepare('SELECT id, seq, removed FROM docs WHERE collection = ? AND seq > ? ORDER BY seq'),
      setHash: db.prepare('UPDATE docs SET hash = ? WHERE collection = ? AND id = ?'),
      setMeta: db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)'),
      tombstones: db.prepare('SELECT count(*) AS n FROM docs WHERE removed = 1'),
      collections: db.prepare('SELECT DISTINCT collection FROM docs'),
    }
    let site = meta('site')
    if (!site) {
      site = randomBytes(9).toString('base64url')
      this.stmt.setMeta.run('site', site)
    }
    this.site = site
    this.seq = Number(meta('seq') ?? 0)
    this.resequenceUnknown()
  }

  static open(dir: string): ChangeLog {
    const file = join(dir, CHANGE_LOG_FILE)
    try {
      const db = new Database(file)
      db.pragma('journal_mode = WAL')
      db.pragma('synchronous = NORMAL')
      return new ChangeLog(db)
    } catch (error) {
      throw new StorageError(ErrorCode.DIRECTORY_UNUSABLE, `Cannot open the change log ${file}: ${String(error)}`, {
        cause: error,
        details: { file },
      })
    }
  }

  get currentSeq(): number {
    return this.seq
  }

  /** Notes local changes committed to Ditto (removed, or changed with content not hashed yet). */
  noteLocal(changes: readonly { collection: string; id: string; removed: boolean }[]): void {
    if (changes.length === 0) return
    this.db.transaction(() => {
      for (const c of changes) this.stmt.upsert.run(c.collection, c.id, ++this.seq, null, c.removed ? 1 : 0)
      this.saveSeq()
    })()
  }

  /** Compares a collection's full content with the stored hashes; sequences every difference. */
  reconcile(collection: string, docs: Iterable<Document>): void {
    const known = new Map<string, { hash: string | null; removed: number }>()
    for (const row of this.stmt.all.iterate(collection)) known.set(row.id, row)
    this.db.transaction(() => {
      for (const doc of docs) {
        const { hash } = contentHash(doc)
        const row = known.get(doc._id)
        known.delete(doc._id)
        if (row && !row.removed && row.hash === null) this.stmt.setHash.run(hash, collection, doc._id)
        else if (!row || row.removed || row.hash !== hash)
          this.stmt.upsert.run(collection, doc._id, ++this.seq, hash, 0)
      }
      for (const [id, row] of known) if (!row.removed) this.stmt.upsert.run(collection, id, ++this.seq, null, 1)
      this.saveSeq()
    })()
  }

  /** Records hashes of documents read while answering, so later reconciles compare against them. */
  recordHashes(collection: string, docs: readonly Document[]): void {
    this.db.transaction(() => {
      for (const doc of docs) {
        const row = this.stmt.entry.get(collection, doc._id)
        if (row && !row.removed && row.hash === null) this.stmt.setHash.run(contentHash(doc).hash, collection, doc._id)
      }
    })()
  }

  /** Entries of a collection changed after `seq`, in change order. */
  entriesAfter(collection: string, seq: number): LogEntry[] {
    return this.stmt.after.all(collection, seq).map((r) => ({ id: r.id, seq: r.seq, removed: r.removed === 1 }))
  }

  tombstones(): number {
    return this.stmt.tombstones.get()?.n ?? 0
  }

  /** Every collection with a document this log has seen. */
  collections(): string[] {
    return this.stmt.collections.all().map((r) => r.collection)
  }

  counterFields(): Map<string, Set<string>> {
    const out = new Map<string, Set<string>>()
    const rows = this.db.prepare('SELECT collection, field FROM counters').all() as {
      collection: string
      field: string
    }[]
    for (const r of rows) {
      const set = out.get(r.collection) ?? new Set()
      set.add(r.field)
      out.set(r.collection, set)
    }
    return out
  }

  addCounterField(collection: string, field: string): void {
    this.db.prepare('INSERT OR IGNORE INTO counters (collection, field) VALUES (?, ?)').run(collection, field)
  }

  encodeCursor(seq: number): string {
    return `mm1.${this.site}.${seq}`
  }

  /** The sequence a cursor stands for. Throws `INVALID_CURSOR` for one this store did not issue. */
  decodeCursor(cursor: unknown): number {
    const bad = () =>
      new ValidationError(
        ErrorCode.INVALID_CURSOR,
        `Change cursor ${JSON.stringify(String(cursor))} was not issued by this store; start again from null.`,
        { details: { cursor: String(cursor) } },
      )
    if (typeof cursor !== 'string') throw bad()
    const m = /^mm1\.([A-Za-z0-9_-]+)\.(\d{1,15})$/.exec(cursor)
    if (!m || m[1] !== this.site) throw bad()
    const seq = Number(m[2])
    if (seq > this.seq) throw bad()
    return seq
  }

  close(): void {
    if (this.db.open) this.db.close()
  }

  private saveSeq(): void {
    this.stmt.setMeta.run('seq', String(this.seq))
  }

  // A change noted but never hashed may have been followed by one committed
  // and not noted (a crash in between): report those documents again.
  private resequenceUnknown(): void {
    const rows = this.db.prepare('SELECT collection, id FROM docs WHERE hash IS NULL AND removed = 0').all() as {
      collection: string
      id: string
    }[]
    if (rows.length === 0) return
    this.db.transaction(() => {
      for (const r of rows) this.stmt.upsert.run(r.collection, r.id, ++this.seq, null, 0)
      this.saveSeq()
    })()
  }
}
