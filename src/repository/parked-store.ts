import type Database from 'better-sqlite3'
import { statementCache } from '../util/statement-cache.js'
import type { ParkEntry, ParkedDocument } from './repository.js'

/**
 * `_meshmirror_parked`: received documents that are not in the database,
 * with why. Kept in the application's database so that an entry commits with
 * the transaction (and the mesh cursor) that could not apply its document:
 * nothing received is ever dropped without a trace.
 */
export const PARKED_DDL = `
CREATE TABLE IF NOT EXISTS _meshmirror_parked (
  model TEXT NOT NULL,
  id TEXT NOT NULL,
  state TEXT NOT NULL,
  op TEXT NOT NULL,
  reason TEXT NOT NULL,
  code TEXT,
  waits_for TEXT,
  waits_key TEXT,
  attempts INTEGER NOT NULL,
  since INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (model, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS _meshmirror_parked_waits ON _meshmirror_parked (waits_for, waits_key) WHERE waits_for IS NOT NULL;
`

interface ParkedRow {
  model: string
  id: string
  state: 'parked' | 'refused'
  op: 'upsert' | 'delete'
  reason: string
  code: string | null
  waits_for: string | null
  waits_key: string | null
  attempts: number
  since: number
  updated_at: number
}

/** Reads and writes of `_meshmirror_parked` on one connection. */
export class ParkedStore {
  private readonly stmt: (sql: string) => Database.Statement

  constructor(db: Database.Database) {
    this.stmt = statementCache(db)
  }

  /** True when any document is kept (cheap: callers skip the rest otherwise). */
  any(state?: 'parked'): boolean {
    const sql =
      state === undefined
        ? 'SELECT EXISTS (SELECT 1 FROM _meshmirror_parked)'
        : "SELECT EXISTS (SELECT 1 FROM _meshmirror_parked WHERE state = 'parked')"
    return this.stmt(sql).pluck().get() === 1
  }

  park(model: string, entries: readonly ParkEntry[]): void {
    const stmt = this.stmt(
      'INSERT INTO _meshmirror_parked (model, id, state, op, reason, code, waits_for, waits_key, attempts, since, updated_at) ' +
        'VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?) ON CONFLICT (model, id) DO UPDATE SET state = excluded.state, op = excluded.op, ' +
        'reason = excluded.reason, code = excluded.code, waits_for = excluded.waits_for, waits_key = excluded.waits_key, ' +
        'attempts = attempts + 1, updated_at = excluded.updated_at',
    )
    const now = Date.now()
    for (const e of entries) {
      stmt.run(model, e.id, e.state, e.op, e.reason, e.code ?? null, e.waitsFor ?? null, e.waitsKey ?? null, now, now)
    }
  }

  unpark(model: string, ids: readonly string[]): void {
    if (ids.length === 0) return
    this.stmt('DELETE FROM _meshmirror_parked WHERE model = ? AND id IN (SELECT value FROM json_each(?))').run(
      model,
      JSON.stringify(ids),
    )
  }

  /** Parked documents waiting for the parent key `key` of `ref` (see `parentRef`, `parentKey`). */
  waitingFor(ref: string, key: string): { model: string; id: string }[] {
    return this.stmt('SELECT model, id FROM _meshmirror_parked WHERE waits_for = ? AND waits_key = ?').all(
      ref,
      key,
    ) as {
      model: string
      id: string
    }[]
  }

  /** True when a removal is parked (rows still referenced it when it arrived). */
  anyRemoval(): boolean {
    return (
      this.stmt("SELECT EXISTS (SELECT 1 FROM _meshmirror_parked WHERE state = 'parked' AND op = 'delete')")
        .pluck()
        .get() === 1
    )
  }

  /**
   * Parked removals that name nothing they wait for: kept by an older
   * version, or of a row several keys of which are referenced. They are tried
   * again after any delete.
   */
  unnamedRemovals(): { model: string; id: string }[] {
    return this.stmt(
      "SELECT model, id FROM _meshmirror_parked WHERE state = 'parked' AND op = 'delete' AND waits_for IS NULL LIMIT 1000",
    ).all() as {
      model: string
      id: string
    }[]
  }

  list(options: { model?: string; state?: 'parked' | 'refused'; limit: number }): ParkedDocument[] {
    const where: string[] = []
    const params: unknown[] = []
    if (options.model !== undefined) {
      where.push('model = ?')
      params.push(options.model)
    }
    if (options.state !== undefined) {
      where.push('state = ?')
      params.push(options.state)
    }
    params.push(options.limit)
    const rows = this.stmt(
      `SELECT * FROM _meshmirror_parked ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY since, model, id LIMIT ?`,
    ).all(...params) as ParkedRow[]
    return rows.map((r) => ({
      model: r.model,
      id: r.id,
      state: r.state,
      op: r.op,
      reason: r.reason,
      code: r.code,
      waitsFor: r.waits_for,
      waitsKey: r.waits_key,
      attempts: r.attempts,
      since: r.since,
      updatedAt: r.updated_at,
    }))
  }

  counts(): { parked: number; refused: number } {
    const out = { parked: 0, refused: 0 }
    const rows = this.stmt('SELECT state, count(*) AS n FROM _meshmirror_parked GROUP BY state').all() as {
      state: string
      n: number
    }[]
    for (const r of rows) if (r.state === 'parked' || r.state === 'refused') out[r.state] = r.n
    return out
  }
}
