import type { JsonValue } from '../mesh/document.js'
import type { CompiledScope, NormalisedFilter } from '../mesh/filter.js'

/** A DQL statement with its bound arguments. Values never appear in the text. */
export interface Dql {
  text: string
  args: Record<string, JsonValue>
}

/** Quotes a collection or field name (validated names never contain a backtick). */
export function ident(name: string): string {
  return `\`${name}\``
}

/** A field path as a DQL expression: `` `address`.`city` ``. */
export function pathExpr(path: readonly string[]): string {
  return path.map(ident).join('.')
}

/** Most `$in` values compiled into one OR chain; longer lists are filtered in memory only. */
const MAX_OR_VALUES = 64

/**
 * `SELECT * FROM c WHERE …` selecting a superset of the documents that match
 * the scope's filter under the reference semantics (`matches` in
 * `src/mesh/match.ts`). The caller finishes with `applyQueryInMemory`.
 *
 * DQL differs from the reference where it follows SQL: `NOT`, `=` and `IN`
 * evaluate to NULL on a missing field (so `NOT (s = 'x')` drops documents
 * without `s`, where `$ne` keeps them), `= null` matches nothing, and sorting
 * puts missing values last. So only conditions whose DQL result contains
 * every reference match are pushed down; the rest (`$ne`, `$nin`, `$not`,
 * comparisons with null, long `$in` lists) select everything and are decided
 * in memory. Ordering, limit and offset are always applied in memory.
 */
export function selectScope(scope: CompiledScope): Dql {
  const args: Record<string, JsonValue> = {}
  const where = superset(scope.filter, args)
  const text = `SELECT * FROM ${ident(scope.collection)}${where === undefined ? '' : ` WHERE ${where}`}`
  return { text, args }
}

/** A predicate true for every document `filter` matches, or undefined for "no restriction". */
function superset(filter: NormalisedFilter, args: Record<string, JsonValue>): string | undefined {
  switch (filter.kind) {
    case 'true':
      return undefined
    case 'and': {
      const parts = filter.items.map((f) => superset(f, args)).filter((p): p is string => p !== undefined)
      return parts.length === 0 ? undefined : parts.map((p) => `(${p})`).join(' AND ')
    }
    case 'or': {
      const parts: string[] = []
      for (const item of filter.items) {
        const p = superset(item, args)
        if (p === undefined) return undefined
        parts.push(`(${p})`)
      }
      return parts.length === 0 ? 'false' : parts.join(' OR ')
    }
    case 'not':
      // IS MISSING is two-valued, so its negation is exact; other negations are left to memory.
      return filter.item.kind === 'exists' ? `${pathExpr(filter.item.path)} IS MISSING` : undefined
    case 'exists':
      return `${pathExpr(filter.path)} IS NOT MISSING`
    case 'eq':
      return equals(filter.path, filter.value, args)
    case 'in': {
      if (filter.values.length === 0) return 'false'
      if (filter.values.every((v) => typeof v === 'string')) {
        return `${pathExpr(filter.path)} IN ${bind(args, filter.values)}`
      }
      if (filter.values.length > MAX_OR_VALUES) return undefined
      return filter.values.map((v) => `(${equals(filter.path, v, args)})`).join(' OR ')
    }
    case 'cmp':
      // DQL compares values of the same type only, as the reference does.
      if (filter.value === null) return undefined
      return `${pathExpr(filter.path)} ${filter.op} ${bind(args, filter.value)}`
  }
}

function equals(path: readonly string[], value: JsonValue, args: Record<string, JsonValue>): string {
  if (value === null) return `${pathExpr(path)} IS NULL`
  return `${pathExpr(path)} = ${bind(args, value)}`
}

function bind(args: Record<string, JsonValue>, value: JsonValue): string {
  const name = `p${Object.keys(args).length}`
  args[name] = value
  return `:${name}`
}
