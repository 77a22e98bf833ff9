import { MeshmirrorError, QueryError } from '../errors.js'
import type { JsonValue } from './document.js'
import type { FilterScalar, OrderBy, Query, Scope } from './query.js'
import { assertCollection, assertJsonValue, parseFieldPath } from './validate.js'

/**
 * A checked filter in a small normal form every backend compiles from:
 * `$ne`, `$nin`, `$exists: false` and field-level `$not` become `not`.
 */
export type NormalisedFilter =
  | { kind: 'true' }
  | { kind: 'and'; items: NormalisedFilter[] }
  | { kind: 'or'; items: NormalisedFilter[] }
  | { kind: 'not'; item: NormalisedFilter }
  | { kind: 'eq'; path: string[]; value: JsonValue }
  | { kind: 'cmp'; path: string[]; op: CompareOp; value: FilterScalar }
  | { kind: 'in'; path: string[]; values: JsonValue[] }
  | { kind: 'exists'; path: string[] }

export type CompareOp = '>' | '>=' | '<' | '<='

/** One checked sort key. */
export interface SortKey {
  path: string[]
  /** The dotted field as given. */
  field: string
  direction: 'asc' | 'desc'
}

/** A checked query. */
export interface CompiledQuery {
  collection: string
  filter: NormalisedFilter
  orderBy: SortKey[]
  limit: number | undefined
  offset: number
}

/** A checked scope. */
export interface CompiledScope {
  collection: string
  filter: NormalisedFilter
}

/** Deepest accepted nesting of `$and`/`$or`/`$not`. */
export const MAX_FILTER_DEPTH = 32
/** Most conditions accepted in one filter (counting `$in` values). */
export const MAX_FILTER_TERMS = 10_000

const COMPARE_OPS: Record<string, CompareOp> = { $gt: '>', $gte: '>=', $lt: '<', $lte: '<=' }
const QUERY_KEYS = new Set(['collection', 'filter', 'orderBy', 'limit', 'offset'])
const TRUE: NormalisedFilter = { kind: 'true' }

/** Checks a query. Throws `INVALID_QUERY` (or `INVALID_COLLECTION`). */
export function compileQuery(query: Query): CompiledQuery {
  if (!isPlainObject(query))
    throw new QueryError('A query must be an object like { collection, filter?, orderBy?, limit? }.')
  for (const key of Object.keys(query)) {
    if (!QUERY_KEYS.has(key)) throw new QueryError(`Unknown query key ${JSON.stringify(key)}.`, { key })
  }
  const { collection, filter } = compileScope({ collection: query.collection, filter: query.filter })
  const { limit, offset } = query
  if (limit !== undefined && !(Number.isSafeInteger(limit) && limit > 0)) {
    throw new QueryError(`Query limit must be a positive integer, got ${String(limit)}.`, { limit })
  }
  if (offset !== undefined && !(Number.isSafeInteger(offset) && offset >= 0)) {
    throw new QueryError(`Query offset must be a non-negative integer, got ${String(offset)}.`, { offset })
  }
  return { collection, filter, orderBy: compileOrderBy(query.orderBy), limit, offset: offset ?? 0 }
}

/** Checks a scope. Throws `INVALID_QUERY` (or `INVALID_COLLECTION`). */
export function compileScope(scope: Scope): CompiledScope {
  if (!isPlainObject(scope)) throw new QueryError('A scope must be an object like { collection, filter? }.')
  assertCollection(scope.collection)
  const counter = { terms: 0 }
  const filter = scope.filter === undefined ? TRUE : normaliseFilter(scope.filter, 0, counter)
  return { collection: scope.collection, filter }
}

function compileOrderBy(orderBy: Query['orderBy']): SortKey[] {
  if (orderBy === undefined) return []
  const keys: OrderBy[] = Array.isArray(orderBy) ? orderBy : [orderBy]
  return keys.map((key) => {
    const spec = typeof key === 'string' ? { field: key, direction: 'asc' as const } : key
    if (!isPlainObject(spec) || typeof spec.field !== 'string') {
      throw new QueryError('Each orderBy key is a field name or { field, direction }.', { orderBy: String(key) })
    }
    const direction = spec.direction ?? 'asc'
    if (direction !== 'asc' && direction !== 'desc') {
      throw new QueryError(`Sort direction must be 'asc' or 'desc', got ${JSON.stringify(direction)}.`)
    }
    return { path: fieldPath(spec.field), field: spec.field, direction }
  })
}

function normaliseFilter(filter: unknown, depth: number, counter: { terms: number }): NormalisedFilter {
  if (depth > MAX_FILTER_DEPTH) throw new QueryError(`Filter nested deeper than ${MAX_FILTER_DEPTH} levels.`)
  if (!isPlainObject(filter)) throw new QueryError(`A filter must be an object, got ${describe(filter)}.`)
  const items: NormalisedFilter[] = []
  for (const [key, value] of Object.entries(filter)) {
    if (value === undefined) continue
    if (key === '$and' || key === '$or') {
      if (!Array.isArray(value)) throw new QueryError(`${key} takes an array of filters, got ${describe(value)}.`)
      const parts = value.map((f) => normaliseFilter(f, depth + 1, counter))
      items.push(key === '$and' ? and(parts) : { kind: 'or', items: parts })
    } else if (key === '$not') {
      items.push({ kind: 'not', item: normaliseFilter(value, depth + 1, counter) })
    } else if (key.startsWith('$')) {
      throw new QueryError(`Unknown filter operator ${JSON.stringify(key)}.`, { operator: key })
    } else {
      items.push(fieldCondition(fieldPath(key), value, depth + 1, counter))
    }
  }
  return and(items)
}

function fieldCondition(path: string[], value: unknown, depth: number, counter: { terms: number }): NormalisedFilter {
  if (depth > MAX_FILTER_DEPTH) throw new QueryError(`Filter nested deeper than ${MAX_FILTER_DEPTH} levels.`)
  count(counter, 1)
  if (!isOperatorObject(value)) return { kind: 'eq', path, value: jsonValue(value, path) }
  const items: NormalisedFilter[] = []
  for (const [op, arg] of Object.entries(value)) {
    if (arg === undefined) continue
    switch (op) {
      case '$eq':
        items.push({ kind: 'eq', path, value: jsonValue(arg, path) })
        break
      case '$ne':
        items.push({ kind: 'not', item: { kind: 'eq', path, value: jsonValue(arg, path) } })
        break
      case '$gt':
      case '$gte':
      case '$lt':
      case '$lte':
        items.push({ kind: 'cmp', path, op: COMPARE_OPS[op]!, value: scalar(op, arg, path) })
        break
      case '$in':
      case '$nin': {
        if (!Array.isArray(arg))
          throw new QueryError(`${op} on ${path.join('.')} takes an array, got ${describe(arg)}.`)
        count(counter, arg.length)
        const cond: NormalisedFilter = { kind: 'in', path, values: arg.map((v) => jsonValue(v, path)) }
        items.push(op === '$in' ? cond : { kind: 'not', item: cond })
        break
      }
      case '$exists':
        if (typeof arg !== 'boolean') throw new QueryError(`$exists on ${path.join('.')} takes true or false.`)
        items.push(arg ? { kind: 'exists', path } : { kind: 'not', item: { kind: 'exists', path } })
        break
      case '$not':
        if (!isOperatorObject(arg)) {
          throw new QueryError(`$not on ${path.join('.')} takes an operator object such as { $gt: 5 }.`)
        }
        items.push({ kind: 'not', item: fieldCondition(path, arg, depth + 1, counter) })
        break
      default:
        throw new QueryError(`Unknown operator ${JSON.stringify(op)} on ${path.join('.')}.`, { operator: op })
    }
  }
  return and(items)
}

function and(items: NormalisedFilter[]): NormalisedFilter {
  const kept = items.filter((f) => f.kind !== 'true')
  if (kept.length === 0) return TRUE
  return kept.length === 1 ? kept[0]! : { kind: 'and', items: kept }
}

function count(counter: { terms: number }, n: number): void {
  counter.terms += n
  if (counter.terms > MAX_FILTER_TERMS) throw new QueryError(`Filter has more than ${MAX_FILTER_TERMS} conditions.`)
}

/** An object whose keys all start with `$` (and there is at least one). */
function isOperatorObject(value: unknown): value is Record<string, unknown> {
  if (!isPlainObject(value)) return false
  const keys = Object.keys(value)
  if (keys.length === 0) return false
  const ops = keys.filter((k) => k.startsWith('$')).length
  if (ops > 0 && ops < keys.length) {
    throw new QueryError(`Filter object mixes operators and fields: ${JSON.stringify(keys)}. Use $eq for a literal.`)
  }
  return ops > 0
}

function fieldPath(field: string): string[] {
  try {
    return parseFieldPath(field)
  } catch (e) {
    throw new QueryError(`Invalid field ${JSON.stringify(String(field))} in query: ${(e as Error).message}`, { field })
  }
}

function jsonValue(value: unknown, path: string[]): JsonValue {
  try {
    assertJsonValue(value, path.join('.'))
  } catch (e) {
    if (e instanceof MeshmirrorError)
      throw new QueryError(`Invalid value in filter: ${e.message}`, { field: path.join('.') })
    throw e
  }
  return value
}

function scalar(op: string, value: unknown, path: string[]): FilterScalar {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value
  if (typeof value === 'number' && Number.isFinite(value)) return value
  throw new QueryError(
    `${op} on ${path.join('.')} takes a string, finite number, boolean or null, got ${describe(value)}.`,
  )
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return 'an array'
  if (value === null) return 'null'
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`
}
