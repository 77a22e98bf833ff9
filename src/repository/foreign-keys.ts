import type Database from 'better-sqlite3'

/** A foreign key as the database declares it. */
export interface ForeignKey {
  /** The parent table. */
  table: string
  /** Columns of the child table, in order. */
  from: string[]
  /** The parent's columns they reference (its primary key when the declaration names none). */
  to: string[]
  /** `CASCADE`, `SET NULL`, `SET DEFAULT`, `RESTRICT` or `NO ACTION`. */
  onDelete: string
}

interface FkRow {
  id: number
  seq: number
  table: string
  from: string
  to: string | null
  on_delete: string
}

/** The foreign keys of a table, with the parent's key filled in where the declaration leaves it out. */
export function readForeignKeys(db: Database.Database, table: string): ForeignKey[] {
  // The pragmas as table-valued functions take the table's name as a bound value: no quoting needed.
  const rows = db.prepare('SELECT * FROM pragma_foreign_key_list(?)').all(table) as FkRow[]
  const byId = new Map<number, FkRow[]>()
  for (const r of rows) {
    const list = byId.get(r.id)
    if (list) list.push(r)
    else byId.set(r.id, [r])
  }
  const out: ForeignKey[] = []
  for (const parts of byId.values()) {
    parts.sort((a, b) => a.seq - b.seq)
    const parent = parts[0]!.table
    let to = parts.map((p) => p.to)
    if (to.some((c) => c === null)) {
      to = (db.prepare('SELECT * FROM pragma_table_info(?)').all(parent) as { name: string; pk: number }[])
        .filter((c) => c.pk > 0)
        .sort((a, b) => a.pk - b.pk)
        .map((c) => c.name)
    }
    out.push({ table: parent, from: parts.map((p) => p.from), to: to as string[], onDelete: parts[0]!.on_delete })
  }
  return out
}

/** Names a parent key a row waits for: `table(col, …)`. */
export function parentRef(fk: Pick<ForeignKey, 'table' | 'to'>): string {
  return `${fk.table}(${fk.to.join(', ')})`
}

/**
 * What a parked removal waits for: the rows referencing its key through
 * `ref` (a `parentRef`) to go. Kept apart from `ref` itself, which names
 * what a parked child waits for (its parent to come).
 */
export function referencingRef(ref: string): string {
  return `rows referencing ${ref}`
}

/**
 * A key's values in a form that compares as SQLite compares them through
 * column affinity: `5` and `'5'` are the same parent key.
 */
export function parentKey(values: readonly unknown[]): string {
  return JSON.stringify(
    values.map((v) => {
      if (typeof v === 'number' || typeof v === 'bigint') return String(v)
      if (typeof v === 'boolean') return v ? '1' : '0'
      // An exact integer beyond 2^53 ({ $int: "…" }) is the same key as its digits.
      if (typeof v === 'object' && v !== null && typeof (v as { $int?: unknown }).$int === 'string') {
        return (v as { $int: string }).$int
      }
      return v
    }),
  )
}

/**
 * Orders tables so that every parent comes before its children (Kahn's
 * algorithm over the foreign keys between them). Tables in a cycle, and
 * self-references, cannot be ordered: they keep their given order and are
 * checked at commit instead. Parents outside `tables` are ignored.
 */
export function parentsFirst<T extends { table: string; foreignKeys: readonly ForeignKey[] }>(
  tables: readonly T[],
): T[] {
  const byTable = new Map(tables.map((t) => [t.table, t]))
  const waiting = new Map<T, number>()
  const children = new Map<string, T[]>()
  for (const t of tables) {
    const parents = new Set(t.foreignKeys.map((fk) => fk.table).filter((p) => p !== t.table && byTable.has(p)))
    waiting.set(t, parents.size)
    for (const p of parents) {
      const list = children.get(p)
      if (list) list.push(t)
      else children.set(p, [t])
    }
  }
  const out: T[] = []
  const ready = tables.filter((t) => waiting.get(t) === 0)
  while (ready.length > 0) {
    const t = ready.shift()!
    out.push(t)
    for (const c of children.get(t.table) ?? []) {
      const n = waiting.get(c)! - 1
      waiting.set(c, n)
      if (n === 0) ready.push(c)
    }
  }
  // What is left is in a cycle (or below one): given order.
  for (const t of tables) if (!out.includes(t)) out.push(t)
  return out
}

/** A foreign key whose child columns no index leads with: SQLite reads the whole child table to check it. */
export interface UnindexedForeignKey {
  /** The child table. */
  table: string
  /** Its columns referencing the parent. */
  columns: string[]
  /** The parent table. */
  parent: string
}

/**
 * Foreign keys referencing `parents` (from any table of the database) that
 * no index of the child table leads with. With foreign keys enforced, every
 * removal of a parent row (and every change of its key) then reads the
 * whole child table, holding the write lock meanwhile.
 */
export function unindexedForeignKeys(db: Database.Database, parents: ReadonlySet<string>): UnindexedForeignKey[] {
  const tables = db
    .prepare(
      "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_meshmirror\\_%' ESCAPE '\\' ORDER BY name",
    )
    .pluck()
    .all() as string[]
  const out: UnindexedForeignKey[] = []
  for (const table of tables) {
    const fks = readForeignKeys(db, table).filter((fk) => parents.has(fk.table))
    if (fks.length === 0) continue
    const leads = indexLeads(db, table)
    for (const fk of fks) {
      const want = new Set(fk.from)
      const covered = leads.some(
        (cols) => cols.length >= want.size && cols.slice(0, want.size).every((c) => want.has(c)),
      )
      if (!covered) out.push({ table, columns: fk.from, parent: fk.table })
    }
  }
  return out
}

/** The columns of each index of a table, in index order (an INTEGER PRIMARY KEY counts as one). */
function indexLeads(db: Database.Database, table: string): string[][] {
  const leads: string[][] = []
  const info = db.prepare('SELECT name, type, pk FROM pragma_table_info(?)').all(table) as {
    name: string
    type: string
    pk: number
  }[]
  const pk = info.filter((c) => c.pk > 0)
  if (pk.length === 1 && pk[0]!.type.toUpperCase() === 'INTEGER') leads.push([pk[0]!.name])
  const indexes = db.prepare('SELECT name FROM pragma_index_list(?)').pluck().all(table) as string[]
  for (const index of indexes) {
    const cols = db.prepare('SELECT name FROM pragma_index_info(?) ORDER BY seqno').pluck().all(index) as (
      | string
      | null
    )[]
    if (cols.every((c) => c !== null)) leads.push(cols as string[])
  }
  return leads
}
