import type { ForeignKey } from '../repository/foreign-keys.js'
import { kindOf, type PgColumn } from './pg-types.js'

/** Runs a query whose values all come back as Postgres's text (the pool parses nothing). */
export type TextQuery = (sql: string, params?: unknown[]) => Promise<Record<string, string | null>[]>

/** A table as the catalog describes it. */
export interface PgTable {
  name: string
  columns: PgColumn[]
  /** Primary-key columns in key order; empty when the table has none. */
  keys: string[]
  foreignKeys: ForeignKey[]
  /** The planner's estimate of its rows (`reltuples`), 0 when never analysed. */
  estimatedRows: number
}

const ON_DELETE: Record<string, string> = {
  a: 'NO ACTION',
  r: 'RESTRICT',
  c: 'CASCADE',
  n: 'SET NULL',
  d: 'SET DEFAULT',
}

/**
 * Reads the ordinary and partitioned tables of `schema` from `pg_catalog`:
 * columns (generated ones left out: they are never written), primary keys
 * (composite too), foreign keys. Writes nothing.
 */
export async function readPgTables(query: TextQuery, schema: string): Promise<Map<string, PgTable>> {
  const tables = new Map<string, PgTable>()
  const rels = await query(
    `SELECT c.relname AS name, greatest(c.reltuples, 0)::bigint AS rows
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY c.relname`,
    [schema],
  )
  for (const r of rels) {
    tables.set(r.name!, { name: r.name!, columns: [], keys: [], foreignKeys: [], estimatedRows: Number(r.rows) })
  }
  if (tables.size === 0) return tables
  const cols = await query(
    `SELECT c.relname AS tbl, a.attname AS name, format_type(a.atttypid, a.atttypmod) AS sql_type,
            coalesce(bt.typname, t.typname) AS type_name, t.typcategory AS category,
            a.attnotnull AS not_null, a.atthasdef AS has_default
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
       JOIN pg_type t ON t.oid = a.atttypid
       LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
      WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY c.relname, a.attnum`,
    [schema],
  )
  for (const c of cols) {
    const t = tables.get(c.tbl!)
    if (!t) continue
    // An array type's name starts with _: its text ({1,2}) travels as a string.
    const kind = c.category === 'A' ? 'text' : kindOf(c.type_name!)
    t.columns.push({
      name: c.name!,
      sqlType: c.sql_type!,
      kind,
      notNull: c.not_null === 't',
      hasDefault: c.has_default === 't',
    })
  }
  const keys = await query(
    `SELECT c.relname AS tbl, json_agg(a.attname ORDER BY k.ord)::text AS keys
       FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
      WHERE n.nspname = $1 AND con.contype = 'p' GROUP BY c.relname`,
    [schema],
  )
  for (const k of keys) {
    const t = tables.get(k.tbl!)
    if (t) t.keys = JSON.parse(k.keys!) as string[]
  }
  const fks = await query(
    `SELECT c.relname AS tbl, pc.relname AS parent, con.confdeltype AS on_delete,
            json_agg(json_build_array(a.attname, pa.attname) ORDER BY k.ord)::text AS cols
       FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_class pc ON pc.oid = con.confrelid
       CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS k(a1, a2, ord)
       JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.a1
       JOIN pg_attribute pa ON pa.attrelid = con.confrelid AND pa.attnum = k.a2
      WHERE n.nspname = $1 AND con.contype = 'f' GROUP BY c.relname, pc.relname, con.conname, con.confdeltype
      ORDER BY c.relname, con.conname`,
    [schema],
  )
  for (const f of fks) {
    const t = tables.get(f.tbl!)
    if (!t) continue
    const pairs = JSON.parse(f.cols!) as [string, string][]
    t.foreignKeys.push({
      table: f.parent!,
      from: pairs.map((p) => p[0]),
      to: pairs.map((p) => p[1]),
      onDelete: ON_DELETE[f.on_delete!] ?? 'NO ACTION',
    })
  }
  return tables
}
