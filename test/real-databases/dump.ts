// Full-equality dumps of an app database: every user table, every row, every
// column as `typeof(c):quote(c)`, in primary-key order. Comparing two dumps
// compares storage classes too (REAL 1.0 is not INTEGER 1, a BLOB is not
// its text), and integers past 2^53 exactly (quote() prints them in SQL).
import type Database from 'better-sqlite3'

/** Rows of every user table, each row a list of `typeof:quote` cells. */
export type Dump = Record<string, string[][]>

const ident = (name: string) => `"${name.replaceAll('"', '""')}"`

interface ColumnInfo {
  name: string
  pk: number
}

/** The user tables of a database (not SQLite's, not meshmirror's own `_meshmirror_*`). */
export function userTables(db: Database.Database): string[] {
  return db
    .prepare(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_meshmirror\\_%' ESCAPE '\\' ORDER BY name",
    )
    .pluck()
    .all() as string[]
}

/** Dumps the given tables (default: every user table). Rows are ordered by primary key, or by every column without one. */
export function dumpDatabase(db: Database.Database, tables: readonly string[] = userTables(db)): Dump {
  const out: Dump = {}
  for (const table of tables) {
    const columns = db.prepare(`PRAGMA table_info(${ident(table)})`).all() as ColumnInfo[]
    const keys = columns
      .filter((c) => c.pk > 0)
      .sort((a, b) => a.pk - b.pk)
      .map((c) => ident(c.name))
    const cells = columns.map((c) => `typeof(${ident(c.name)}) || ':' || quote(${ident(c.name)})`)
    const order = keys.length > 0 ? keys : columns.map((c) => ident(c.name))
    out[table] = db
      .prepare(`SELECT ${cells.join(', ')} FROM ${ident(table)} ORDER BY ${order.join(', ')}`)
      .raw()
      .all() as string[][]
  }
  return out
}

/**
 * The differences between two dumps, at most `limit` of them, in words: a
 * missing table, a different row count, the first rows that differ. Empty
 * when equal.
 */
export function diffDumps(a: Dump, b: Dump, names: [string, string] = ['a', 'b'], limit = 8): string[] {
  const out: string[] = []
  const tables = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()
  for (const t of tables) {
    const ra = a[t]
    const rb = b[t]
    if (!ra || !rb) {
      out.push(`${t}: only in ${ra ? names[0] : names[1]}`)
      continue
    }
    if (ra.length !== rb.length) out.push(`${t}: ${ra.length} rows in ${names[0]}, ${rb.length} in ${names[1]}`)
    const ka = new Map(ra.map((r) => [JSON.stringify(r), r]))
    const kb = new Map(rb.map((r) => [JSON.stringify(r), r]))
    const show = (r: string[]) => r.map((c) => (c.length > 60 ? `${c.slice(0, 57)}...` : c)).join(' | ')
    let shown = 0
    for (const [k, r] of ka) {
      if (kb.has(k) || shown >= 3) continue
      out.push(`${t}: only in ${names[0]}: ${show(r)}`)
      shown++
    }
    shown = 0
    for (const [k, r] of kb) {
      if (ka.has(k) || shown >= 3) continue
      out.push(`${t}: only in ${names[1]}: ${show(r)}`)
      shown++
    }
    if (out.length >= limit) break
  }
  return out.slice(0, limit)
}

/** Row counts of every table of a dump (for short messages). */
export function dumpCounts(d: Dump): Record<string, number> {
  return Object.fromEntries(Object.entries(d).map(([t, rows]) => [t, rows.length]))
}
