import { ErrorCode, MeshmirrorError } from '../errors.js'
import type { ForeignKey } from '../repository/foreign-keys.js'
import type { Row } from '../repository/repository.js'
import { keyValues } from '../repository/row-key.js'
import { idSql, q } from './pg-capture.js'
import { decodePg, encodePg, type PgColumn } from './pg-types.js'

/** A model resolved against its Postgres table. */
export interface PgModel {
  name: string
  schema: string
  table: string
  keys: string[]
  columns: PgColumn[]
  byName: Map<string, PgColumn>
  foreignKeys: ForeignKey[]
  /** `"schema"."table"`. */
  qualified: string
  /** The select list of every column. */
  selectList: string
  keyColumns: PgColumn[]
}

export function pgModel(m: Omit<PgModel, 'byName' | 'qualified' | 'selectList' | 'keyColumns'>): PgModel {
  const byName = new Map(m.columns.map((c) => [c.name, c]))
  return {
    ...m,
    byName,
    qualified: `${q(m.schema)}.${q(m.table)}`,
    selectList: m.columns.map((c) => q(c.name)).join(', '),
    keyColumns: m.keys.map((k) => byName.get(k)!),
  }
}

/** A row as Postgres returned it (text), as adapters see it. */
export function decodeRow(m: PgModel, raw: Record<string, string | null>): Row {
  const row: Row = {}
  for (const c of m.columns) row[c.name] = decodePg(raw[c.name] ?? null, c.kind)
  return row
}

/** A captured old row (column → text), as adapters see it. */
export function decodeOld(m: PgModel, old: unknown): Row | null {
  if (old === null || old === undefined) return null
  const raw = (typeof old === 'string' ? JSON.parse(old) : old) as Record<string, string | null>
  const row: Row = {}
  for (const c of m.columns) if (c.name in raw) row[c.name] = decodePg(raw[c.name] ?? null, c.kind)
  return row
}

/** `k = ANY($n::type[])` or `(k1, k2) IN (SELECT * FROM unnest(…))`, with the key arrays of `ids` as parameters. */
export function keysIn(m: PgModel, ids: readonly string[], params: unknown[], alias?: string): string {
  const prefix = alias ? `${alias}.` : ''
  const arrays = m.keys.map(() => [] as string[])
  for (const id of ids) {
    const values = keyValues(m, id)
    values.forEach((v, i) => {
      arrays[i]!.push(String(v))
    })
  }
  const refs = m.keyColumns.map((c, i) => {
    params.push(arrays[i])
    return `$${params.length}::${c.sqlType}[]`
  })
  if (m.keys.length === 1) return `${prefix}${q(m.keys[0]!)} = ANY(${refs[0]})`
  return `(${m.keys.map((k) => `${prefix}${q(k)}`).join(', ')}) IN (SELECT * FROM unnest(${refs.join(', ')}))`
}

/** `(k1, k2) > ($n, $n+1)`: rows after a document id in key order. */
export function keysAfter(m: PgModel, id: string, params: unknown[], alias?: string): string {
  const prefix = alias ? `${alias}.` : ''
  const values = keyValues(m, id)
  const refs = m.keyColumns.map((c, i) => {
    params.push(String(values[i]))
    return `$${params.length}::${c.sqlType}`
  })
  return `(${m.keys.map((k) => `${prefix}${q(k)}`).join(', ')}) > (${refs.join(', ')})`
}

/** The key list for ORDER BY and ON CONFLICT. */
export function keyList(m: PgModel, alias?: string): string {
  const prefix = alias ? `${alias}.` : ''
  return m.keys.map((k) => `${prefix}${q(k)}`).join(', ')
}

/** The document id expression of a table alias. */
export function idOf(m: PgModel, alias: string): string {
  return idSql(m, alias)
}

/** Types without an equality operator: compared as text. */
const NO_EQUALITY = /^(json|xml|point|line|lseg|box|path|polygon|circle)\b/

/**
 * The statement writing rows with the columns `columns` in one go: an
 * `INSERT … SELECT FROM unnest(…) ON CONFLICT DO UPDATE` that leaves a row
 * holding the same values untouched (so the count is of rows that changed).
 */
export function upsertSql(m: PgModel, columns: readonly PgColumn[]): string {
  const names = columns.map((c) => q(c.name)).join(', ')
  const arrays = columns.map((c, i) => `$${i + 1}::${c.sqlType}[]`).join(', ')
  const rest = columns.filter((c) => !m.keys.includes(c.name))
  const head = `INSERT INTO ${m.qualified} AS t (${names}) SELECT * FROM unnest(${arrays}) ON CONFLICT (${keyList(m)})`
  if (rest.length === 0) return `${head} DO NOTHING`
  const cmp = (ref: string) =>
    rest.map((c) => (NO_EQUALITY.test(c.sqlType) ? `${ref}.${q(c.name)}::text` : `${ref}.${q(c.name)}`)).join(', ')
  const set = rest.map((c) => `${q(c.name)} = EXCLUDED.${q(c.name)}`).join(', ')
  const single = rest.length === 1
  const distinct = single
    ? `${cmp('t')} IS DISTINCT FROM ${cmp('EXCLUDED')}`
    : `(${cmp('t')}) IS DISTINCT FROM (${cmp('EXCLUDED')})`
  return `${head} DO UPDATE SET ${set} WHERE ${distinct}`
}

/** A row's values as the text parameters of {@link upsertSql}, column by column. */
export function rowColumns(m: PgModel, row: Row): PgColumn[] {
  const out: PgColumn[] = []
  for (const name of Object.keys(row)) {
    const c = m.byName.get(name)
    if (!c) {
      throw new MeshmirrorError(
        ErrorCode.DOCUMENT_REJECTED,
        `Table ${m.table} has no column ${name}; its columns are ${[...m.byName.keys()].join(', ')}.`,
        { details: { model: m.name, table: m.table, column: name } },
      )
    }
    out.push(c)
  }
  return out
}

/** Encodes one row's value of each column into `arrays` (one per column). */
export function pushRow(m: PgModel, columns: readonly PgColumn[], row: Row, arrays: (string | null)[][]): void {
  columns.forEach((c, i) => {
    arrays[i]!.push(encodePg(row[c.name], c, m.table))
  })
}
