import type { EncodedChunk, VersionVector } from './types.js'
import { covers, maxInto } from './version-vector.js'

/** A row one local commit wrote, as stored. */
export interface RecentRow {
  seq: number
  collection: string
  id: string
  /** The stored document JSON (null for a removal). */
  doc: string | null
  /** The stored metadata JSON. */
  meta: string
  /** The metadata's version vector (`meta.v`). */
  versions: VersionVector
}

/** Rows kept at most, and their JSON's characters: a live link needs the last commit or few. */
export const RECENT_ROWS = 256
export const RECENT_CHARS = 1 << 20

/**
 * The rows of the last local commits, as they were written, so that a live
 * link sends a change straight from its commit instead of reading it back
 * (most of a sender's work per write once the link has caught up).
 *
 * It accounts for every row of the table with a sequence after `from`, up
 * to `to`: the oldest of them (up to `summaryTo`) only by the entry-wise
 * maximum of their version vectors, the others as written. It answers
 * `encodedChangesFor` for a cursor in that range exactly as the query does
 * when the summary is covered by what the peer holds (nothing summarised is
 * sent); anything else (a catch-up, a commit it could not follow) is read
 * from the table.
 *
 * A commit of received changes, or of more rows than are kept, is
 * summarised rather than kept: during a catch-up the receiver's own link to
 * the sending peer learns that the peer holds all of it without a query.
 */
export class RecentChanges {
  private rows: RecentRow[] = []
  /** Entry-wise maximum of the versions of every row after `from` up to `summaryTo` (and perhaps more). */
  private summary: VersionVector = Object.create(null)
  private summaryTo: number
  /** The sequence of each kept document's row: an older kept row of it is gone from the table. */
  private readonly latest = new Map<string, Map<string, number>>()
  private chars = 0
  private from: number
  private to: number

  constructor(seq: number) {
    this.from = seq
    this.to = seq
    this.summaryTo = seq
  }

  /**
   * A commit moved the committed sequence from `after` to `upTo`, writing
   * `rows` (in sequence order), or rows it did not list (undefined) whose
   * version vectors are at most `versions` entry-wise.
   */
  committed(after: number, upTo: number, rows: readonly RecentRow[] | undefined, versions: VersionVector): void {
    if (after !== this.to) {
      this.clear(upTo)
      return
    }
    if (rows === undefined || rows.length > RECENT_ROWS) {
      // The kept rows go into the summary too: it must precede every kept row.
      for (const row of this.rows) maxInto(this.summary, row.versions)
      maxInto(this.summary, versions)
      this.rows = []
      this.latest.clear()
      this.chars = 0
      this.summaryTo = upTo
      this.to = upTo
      return
    }
    for (const row of rows) {
      let ids = this.latest.get(row.collection)
      if (!ids) {
        ids = new Map()
        this.latest.set(row.collection, ids)
      }
      ids.set(row.id, row.seq)
      this.rows.push(row)
      this.chars += (row.doc?.length ?? 0) + row.meta.length
    }
    this.to = upTo
    while (this.rows.length > RECENT_ROWS || this.chars > RECENT_CHARS) this.dropOldest()
  }

  /**
   * `encodedChangesFor(peerVv, after, limit)` from the kept rows, when they
   * hold everything after `after` up to `upTo` (the committed sequence);
   * otherwise undefined.
   */
  changesFor(
    peerVv: VersionVector,
    after: number,
    limit: number,
    upTo: number,
    vv: VersionVector,
  ): EncodedChunk | undefined {
    if (this.to !== upTo || after < this.from || after > upTo) return undefined
    // Summarised rows are left out only when the peer holds every version of them (then none is newer).
    if (after < this.summaryTo && !covers(peerVv, this.summary)) return undefined
    // The query's bounds and order (see readChanges).
    const scanTo = Math.min(upTo, after + Math.max(limit * 32, 4096))
    const changes: string[] = []
    let cursor = scanTo
    let complete = scanTo === upTo
    for (let k = this.firstAfter(after); k < this.rows.length; k++) {
      const row = this.rows[k]!
      if (row.seq > scanTo) break
      if (this.latest.get(row.collection)?.get(row.id) !== row.seq || covers(peerVv, row.versions)) continue
      if (changes.length >= limit) {
        complete = false
        break
      }
      cursor = row.seq
      changes.push(
        `{"collection":${JSON.stringify(row.collection)},"id":${JSON.stringify(row.id)},"doc":${row.doc ?? 'null'},"meta":${row.meta}}`,
      )
    }
    if (complete) cursor = upTo
    return complete ? { changes, cursor, complete, versionVector: { ...vv } } : { changes, cursor, complete }
  }

  /** Index of the first kept row with a sequence after `after`. */
  private firstAfter(after: number): number {
    let lo = 0
    let hi = this.rows.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.rows[mid]!.seq <= after) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** The oldest kept row goes into the summary. */
  private dropOldest(): void {
    const row = this.rows.shift()!
    this.chars -= (row.doc?.length ?? 0) + row.meta.length
    maxInto(this.summary, row.versions)
    this.summaryTo = row.seq
    const ids = this.latest.get(row.collection)!
    if (ids.get(row.id) === row.seq) {
      ids.delete(row.id)
      if (ids.size === 0) this.latest.delete(row.collection)
    }
  }

  /** Forgets every row: the next reads start at `seq`. */
  private clear(seq: number): void {
    this.rows = []
    this.latest.clear()
    this.chars = 0
    this.summary = Object.create(null)
    this.from = seq
    this.to = seq
    this.summaryTo = seq
  }
}
