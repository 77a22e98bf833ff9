import type { JsonValue } from '../mesh/document.js'
import type { NormalisedFilter, SortKey } from '../mesh/filter.js'

/**
 * SQL for a filter over the `docs` table. `exact` is true when the SQL alone
 * decides the filter; otherwise it selects a superset and the caller must
 * check each row with `matches`.
 */
export interface SqlFilter {
  sql: string
  params: unknown[]
  exact: boolean
}

/**
 * The SQL expression reading a field. Path segments were validated (no
 * quotes, dots, `$` or brackets), so they are safe inside the JSON path
 * literal, and the literal is what lets an expression index be used.
 */
export function fieldExpr(path: readonly string[], column = 'doc'): string {
  if (path.length === 1 && path[0] === '_id') return 'id'
  return `json_extract(${column}, '${jsonPath(path)}')`
}

/** The SQL expression giving a field's JSON type (NULL when missing). */
export function typeExpr(path: readonly string[], column = 'doc'): string {
  if (path.length === 1 && path[0] === '_id') return `'text'`
  return `json_type(${column}, '${jsonPath(path)}')`
}

function jsonPath(path: readonly string[]): string {
  return `$${path.map((p) => `."${p}"`).join('')}`
}

/** Translates a filter to SQL. */
export function filterToSql(filter: NormalisedFilter): SqlFilter {
  return translate(filter, false)
}

// Negations are pushed down to the conditions (De Morgan), so that an SQL
// NULL (a missing field) never meets NOT: a negated condition is made
// null-safe, and positive ones keep the plain form an index can serve.
function translate(f: NormalisedFilter, negated: boolean): SqlFilter {
  switch (f.kind) {
    case 'true':
      return { sql: negated ? '0' : '1', params: [], exact: true }
    case 'not':
      return translate(f.item, !negated)
    case 'and':
    case 'or': {
      const parts = f.items.map((item) => translate(item, negated))
      const joiner = (f.kind === 'and') !== negated ? ' AND ' : ' OR '
      if (parts.length === 0) return { sql: (f.kind === 'and') !== negated ? '1' : '0', params: [], exact: true }
      return {
        sql: parts.map((p) => `(${p.sql})`).join(joiner),
        params: parts.flatMap((p) => p.params),
        exact: parts.every((p) => p.exact),
      }
    }
    default: {
      const leaf = condition(f)
      if (!negated) return leaf
      // The negation of a superset is not a superset: leave it to `matches`.
      if (!leaf.exact) return { sql: '1', params: [], exact: false }
      return { sql: `NOT ifnull(${leaf.sql}, 0)`, params: leaf.params, exact: true }
    }
  }
}

function condition(f: NormalisedFilter): SqlFilter {
  switch (f.kind) {
    case 'exists':
      return { sql: `${typeExpr(f.path)} IS NOT NULL`, params: [], exact: true }
    case 'eq':
      return equals(f.path, f.value)
    case 'in': {
      const parts = f.values.map((v) => equals(f.path, v))
      if (parts.length === 0) return { sql: '0', params: [], exact: true }
      return (
        inList(f.path, f.values) ?? {
          sql: parts.map((p) => `(${p.sql})`).join(' OR '),
          params: parts.flatMap((p) => p.params),
          exact: parts.every((p) => p.exact),
        }
      )
    }
    case 'cmp': {
      const e = fieldExpr(f.path)
      const t = typeExpr(f.path)
      const v = f.value
      if (v === null) return { sql: f.op === '>=' || f.op === '<=' ? `${t} = 'null'` : '0', params: [], exact: true }
      if (typeof v === 'number')
        return { sql: `${e} ${f.op} ? AND ${t} IN ('integer', 'real')`, params: [v], exact: true }
      if (typeof v === 'string') return { sql: `${e} ${f.op} ? AND ${t} = 'text'`, params: [v], exact: true }
      return { sql: `${e} ${f.op} ? AND ${t} IN ('true', 'false')`, params: [v ? 1 : 0], exact: true }
    }
    default:
      throw new Error(`unexpected filter node ${f.kind}`)
  }
}

function equals(path: readonly string[], value: JsonValue): SqlFilter {
  const e = fieldExpr(path)
  const t = typeExpr(path)
  if (value === null) return { sql: `${e} IS NULL AND ${t} = 'null'`, params: [], exact: true }
  switch (typeof value) {
    case 'string':
      return { sql: `${e} = ? AND ${t} = 'text'`, params: [value], exact: true }
    case 'number':
      return { sql: `${e} = ? AND ${t} IN ('integer', 'real')`, params: [value], exact: true }
    case 'boolean':
      return { sql: `${e} = ? AND ${t} = '${value}'`, params: [value ? 1 : 0], exact: true }
    default:
      // Arrays and objects: SQLite's JSON text of a value is not canonical, so
      // select by type and compare structurally in memory.
      return { sql: `${t} = '${Array.isArray(value) ? 'array' : 'object'}'`, params: [], exact: false }
  }
}

/** `IN (...)` for a list of only strings or only numbers: one index probe per value. */
function inList(path: readonly string[], values: readonly JsonValue[]): SqlFilter | undefined {
  const kind = typeof values[0]
  if ((kind !== 'string' && kind !== 'number') || values.some((v) => typeof v !== kind)) return undefined
  const e = fieldExpr(path)
  const t = typeExpr(path)
  const types = kind === 'string' ? `= 'text'` : `IN ('integer', 'real')`
  // json_each keeps the statement one size however long the list is.
  return {
    sql: `${e} IN (SELECT value FROM json_each(?)) AND ${t} ${types}`,
    params: [JSON.stringify(values)],
    exact: true,
  }
}

const RANK_CASE = (t: string): string =>
  `CASE ${t} WHEN 'false' THEN 1 WHEN 'true' THEN 2 WHEN 'integer' THEN 3 WHEN 'real' THEN 3 WHEN 'text' THEN 4 WHEN 'array' THEN 5 WHEN 'object' THEN 5 ELSE 0 END`

/**
 * The ORDER BY list for sort keys, ending with `id`. Types sort
 * missing/null < false < true < numbers < strings < arrays/objects.
 */
export function orderToSql(orderBy: readonly SortKey[]): string {
  const terms: string[] = []
  for (const key of orderBy) {
    const dir = key.direction === 'desc' ? ' DESC' : ''
    if (key.path.length === 1 && key.path[0] === '_id') {
      terms.push(`id${dir}`)
      continue
    }
    terms.push(`${RANK_CASE(typeExpr(key.path))}${dir}`, `${fieldExpr(key.path)}${dir}`)
  }
  terms.push('id')
  return terms.join(', ')
}
