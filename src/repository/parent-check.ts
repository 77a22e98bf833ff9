import type Database from 'better-sqlite3'
import type { JsonObject } from '../mesh/document.js'
import type { Orphan } from './batch-groups.js'
import { type ForeignKey, parentKey, parentRef } from './foreign-keys.js'
import type { KeyMap } from './key-map.js'
import { type ModelInfo, quoteIdent } from './model-definition.js'
import type { Row } from './repository.js'
import { rowId } from './row-key.js'
import { fromTagged } from './value-codec.js'

/** The rows of one model a batch writes. */
export interface BatchRows {
  model: ModelInfo
  /** Rows to upsert, by write index. */
  upserts: Map<number, Row>
  /** Ids the batch deletes. */
  deletes: Set<string>
}

/**
 * Finds the rows of a batch whose parent row (by a foreign key) will not be
 * there when the batch commits: neither in the database (and not deleted by
 * the batch) nor written by the batch itself (unless that row is an orphan
 * too). Each lookup is one probe of the parent key's index.
 */
export class ParentCheck {
  private readonly lookups = new Map<string, Database.Statement>()
  private readonly localParents = new Map<string, ModelInfo | undefined>()

  constructor(
    private readonly db: Database.Database,
    private readonly models: ReadonlyMap<string, ModelInfo>,
    private readonly keys: KeyMap,
  ) {}

  /**
   * Orphans by model name, then write index. `localOnly`: check only the
   * foreign keys referencing a `local` model (their ids cannot be stored
   * without the parent, even when SQLite does not enforce foreign keys).
   */
  orphans(batch: readonly BatchRows[], localOnly = false): Map<string, Map<number, Orphan>> {
    const out = new Map<string, Map<number, Orphan>>()
    const byTable = new Map(batch.map((b) => [b.model.table, b]))
    // Parent keys the batch writes, per referenced key (`table(cols)`): key → write indexes.
    const written = new Map<string, Map<string, Set<number>>>()
    const writtenKeys = (fk: ForeignKey, rows: BatchRows): Map<string, Set<number>> => {
      const ref = parentRef(fk)
      let keys = written.get(ref)
      if (!keys) {
        keys = new Map()
        for (const [i, row] of rows.upserts) {
          const k = parentKey(fk.to.map((c) => row[c]))
          const set = keys.get(k)
          if (set) set.add(i)
          else keys.set(k, new Set([i]))
        }
        written.set(ref, keys)
      }
      return keys
    }
    // Rows whose parent is only in the batch: checked again while orphans are found.
    const viaBatch: { rows: BatchRows; index: number; fk: ForeignKey; parent: BatchRows; key: string }[] = []
    for (const rows of batch) {
      const fks = rows.model.foreignKeys.filter(
        (fk) => fk.from.length === fk.to.length && (!localOnly || rows.model.localRefs.has(fk.from[0]!)),
      )
      if (fks.length === 0) continue
      for (const [index, row] of rows.upserts) {
        for (const fk of fks) {
          const values = fk.from.map((c) => row[c])
          // A key with a NULL part references nothing (SQLite does not check it).
          if (values.some((v) => v === null || v === undefined)) continue
          const key = parentKey(values)
          const parent = byTable.get(fk.table)
          if (parent && writtenKeys(fk, parent).has(key)) {
            viaBatch.push({ rows, index, fk, parent, key })
            continue
          }
          if (this.exists(fk, values, parent)) continue
          this.add(out, rows, index, fk, key, values)
          break
        }
      }
    }
    // A parent written by the batch that is itself an orphan does not count.
    for (let changed = true; changed; ) {
      changed = false
      for (const v of viaBatch) {
        if (out.get(v.rows.model.name)?.has(v.index)) continue
        const writers = written.get(parentRef(v.fk))?.get(v.key)
        const orphaned = out.get(v.parent.model.name)
        const live = [...(writers ?? [])].some((i) => !orphaned?.has(i))
        if (live) continue
        const values = v.fk.from.map((c) => v.rows.upserts.get(v.index)![c])
        if (this.exists(v.fk, values, undefined)) continue
        this.add(out, v.rows, v.index, v.fk, v.key, values)
        changed = true
      }
    }
    return out
  }

  private add(
    out: Map<string, Map<number, Orphan>>,
    rows: BatchRows,
    index: number,
    fk: ForeignKey,
    key: string,
    values: unknown[],
  ): void {
    let m = out.get(rows.model.name)
    if (!m) {
      m = new Map()
      out.set(rows.model.name, m)
    }
    const where = fk.to.map((c, i) => `${c} = ${JSON.stringify(values[i])}`).join(', ')
    m.set(index, {
      waitsFor: parentRef(fk),
      waitsKey: key,
      reason: `waits for its parent: no ${fk.table} row with ${where} (foreign key ${fk.from.join(', ')})`,
    })
  }

  /** The parent row is in the database and the batch does not delete it. */
  private exists(fk: ForeignKey, values: unknown[], parent: BatchRows | undefined): boolean {
    const local = fk.from.length === 1 ? this.localParent(fk) : undefined
    if (local !== undefined) {
      // The value is the parent's document id: find the key this database holds it under.
      const id = values[0]
      const key = typeof id === 'string' ? this.keys.localKey(local.name, id) : undefined
      if (key === undefined || !this.lookup(fk).get(key)) return false
      return !parent?.deletes.has(id as string)
    }
    const row = this.lookup(fk).get(...values.map(bindable)) as Record<string, unknown> | undefined
    if (!row) return false
    if (!parent || parent.deletes.size === 0) return true
    const model = [...this.models.values()].find((m) => m.table === fk.table)
    return !model || !parent.deletes.has(rowId(model, row))
  }

  /** The `local` model a foreign key references by its key, if any (found once per key). */
  private localParent(fk: ForeignKey): ModelInfo | undefined {
    const ref = parentRef(fk)
    if (!this.localParents.has(ref)) {
      const m = [...this.models.values()].find(
        (m) => m.table === fk.table && m.keyMode === 'local' && fk.to[0] === m.keys[0],
      )
      this.localParents.set(ref, m)
    }
    return this.localParents.get(ref)
  }

  private lookup(fk: ForeignKey): Database.Statement {
    const ref = parentRef(fk)
    let stmt = this.lookups.get(ref)
    if (!stmt) {
      const where = fk.to.map((c) => `${quoteIdent(c)} = ?`).join(' AND ')
      stmt = this.db.prepare(`SELECT * FROM ${quoteIdent(fk.table)} WHERE ${where} LIMIT 1`)
      this.lookups.set(ref, stmt)
    }
    return stmt
  }
}

/** A row value as SQLite binds it (tagged exact values decoded). */
function bindable(v: unknown): unknown {
  if (typeof v === 'boolean') return v ? 1 : 0
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) return fromTagged(v as JsonObject) ?? JSON.stringify(v)
  return v
}
