import type Database from 'better-sqlite3'
import { ErrorCode, ValidationError } from '../errors.js'
import type { Document } from '../mesh/document.js'
import { type CompiledQuery, compileScope } from '../mesh/filter.js'
import { applyQueryInMemory, matches } from '../mesh/match.js'
import type { ChangeSet } from '../mesh/mesh-store.js'
import type { Scope } from '../mesh/query.js'
import { filterToSql, orderToSql } from './query-sql.js'
import { committedReads, parseDoc, type StoreCore } from './store-core.js'
import type { ChangeChunk, DocMeta, EncodedChunk, VersionVector } from './types.js'

/** Runs a compiled query on one connection. */
export function runQuery(db: Database.Database, q: CompiledQuery): Document[] {
  const where = filterToSql(q.filter)
  const base = `SELECT doc FROM docs WHERE collection = ? AND doc IS NOT NULL AND (${where.sql})`
  const params: unknown[] = [q.collection, ...where.params]
  if (!where.exact) {
    const rows = db
      .prepare(base)
      .pluck()
      .all(...params) as string[]
    return applyQueryInMemory(
      q,
      rows.map((r) => JSON.parse(r) as Document),
    )
  }
  let sql = `${base} ORDER BY ${q.orderBy.length > 0 ? orderToSql(q.orderBy) : 'id'}`
  if (q.limit !== undefined || q.offset > 0) {
    sql += ' LIMIT ? OFFSET ?'
    params.push(q.limit ?? -1, q.offset)
  }
  const rows = db
    .prepare(sql)
    .pluck()
    .all(...params) as string[]
  return rows.map((r) => JSON.parse(r) as Document)
}

/** Counts documents in a scope. */
export function countScope(db: Database.Database, scope: Scope): number {
  const s = compileScope(scope)
  const where = filterToSql(s.filter)
  // A whole collection: its rows less its removed documents, each counted in an index.
  if (where.exact && where.sql === '1' && where.params.length === 0)
    return db
      .prepare(
        'SELECT (SELECT count(*) FROM docs WHERE collection = @c) - (SELECT count(*) FROM docs WHERE collection = @c AND doc IS NULL)',
      )
      .pluck()
      .get({ c: s.collection }) as number
  const params = [s.collection, ...where.params]
  const from = `FROM docs WHERE collection = ? AND doc IS NOT NULL AND (${where.sql})`
  if (where.exact)
    return db
      .prepare(`SELECT count(*) ${from}`)
      .pluck()
      .get(...params) as number
  let n = 0
  for (const r of db
    .prepare(`SELECT doc ${from}`)
    .pluck()
    .iterate(...params) as Iterable<string>) {
    if (matches(s.filter, JSON.parse(r) as Document)) n++
  }
  return n
}

const CURSOR_RE = /^mm1\.([A-Za-z0-9_-]{1,64})\.(\d{1,15})$/

export function encodeCursor(core: StoreCore, seq: number): string {
  return `mm1.${core.site}.${seq}`
}

/** The sequence a cursor stands for. Throws `INVALID_CURSOR` for a cursor of another store. */
export function decodeCursor(core: StoreCore, cursor: unknown): number {
  if (cursor === null) return 0
  const m = typeof cursor === 'string' ? CURSOR_RE.exec(cursor) : null
  const seq = m ? Number(m[2]) : Number.NaN
  if (!m || m[1] !== core.site || seq > core.committedSeq) {
    throw new ValidationError(
      ErrorCode.INVALID_CURSOR,
      `Change cursor ${JSON.stringify(String(cursor))} was not issued by this store (site ${core.site}); catch up from null instead.`,
      { details: { cursor } },
    )
  }
  return seq
}

/** What changed in a scope after a cursor. */
export function changesSince(core: StoreCore, cursor: string | null, scope: Scope, limit: number): ChangeSet {
  const s = compileScope(scope)
  const from = decodeCursor(core, cursor)
  const upTo = core.committedSeq
  const out: ChangeSet = { changed: [], removed: [], cursor: '', hasMore: false }
  let last = from
  const rows = core.reader
    .prepare('SELECT seq, id, doc FROM docs WHERE seq > ? AND seq <= ? AND collection = ? ORDER BY seq')
    .iterate(from, upTo, s.collection) as IterableIterator<{ seq: number; id: string; doc: string | null }>
  for (const row of rows) {
    if (out.changed.length + out.removed.length >= limit) {
      out.hasMore = true
      break
    }
    last = row.seq
    const doc = parseDoc(row.doc)
    if (doc === null) out.removed.push(row.id)
    else if (matches(s.filter, doc)) out.changed.push(doc)
  }
  // With nothing more to read, move the cursor past other collections' changes too.
  out.cursor = encodeCursor(core, out.hasMore ? last : upTo)
  return out
}

/** Our changes after `after` that a peer with `peerVv` lacks. */
export function changesFor(core: StoreCore, peerVv: Record<string, number>, after: number, limit: number): ChangeChunk {
  return readChanges(core, peerVv, after, limit, (row) => ({
    collection: row.collection,
    id: row.id,
    doc: JSON.parse(row.doc ?? 'null'),
    meta: JSON.parse(row.meta) as DocMeta,
  }))
}

/**
 * `changesFor`, each change as the JSON text `JSON.stringify` gives for it,
 * put together from the stored JSON without parsing it: what a sender puts
 * on the wire, without decoding and encoding every document again.
 */
export function encodedChangesFor(
  core: StoreCore,
  peerVv: Record<string, number>,
  after: number,
  limit: number,
): EncodedChunk {
  // Collections and ids are strings of any content: encoded. The stored doc and meta are JSON texts.
  return readChanges(
    core,
    peerVv,
    after,
    limit,
    (row) =>
      `{"collection":${JSON.stringify(row.collection)},"id":${JSON.stringify(row.id)},"doc":${row.doc ?? 'null'},"meta":${row.meta}}`,
  )
}

function readChanges<T>(
  core: StoreCore,
  peerVv: Record<string, number>,
  after: number,
  limit: number,
  change: (row: { collection: string; id: string; doc: string | null; meta: string }) => T,
): { changes: T[]; cursor: number; complete: boolean; versionVector?: VersionVector } {
  const upTo = core.committedSeq
  // Bounds the work of one call: at most this many sequence numbers are looked at.
  const scanTo = Math.min(upTo, after + Math.max(limit * 32, 4096))
  const changes: T[] = []
  let cursor = scanTo
  let complete = scanTo === upTo
  // SQLite skips what the peer holds (a document none of whose versions is newer than
  // the peer's): during a catch-up, most of what a receiver commits came from that peer.
  const rows = committedReads(core).s.changesFor.iterate({ after, upTo: scanTo, vv: JSON.stringify(peerVv) })
  for (const row of rows) {
    if (changes.length >= limit) {
      complete = false
      break
    }
    cursor = row.seq
    changes.push(change(row))
  }
  if (complete) cursor = upTo
  return complete ? { changes, cursor, complete, versionVector: { ...core.vv } } : { changes, cursor, complete }
}
