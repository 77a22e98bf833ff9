import type { Document, JsonValue } from './document.js'
import type { CompiledQuery, NormalisedFilter, SortKey } from './filter.js'
import { jsonEqual } from './json.js'

/** The value at a field path, or undefined when a step is missing or not an object. */
export function getPath(doc: Document, path: readonly string[]): JsonValue | undefined {
  let value: JsonValue | undefined = doc
  for (const key of path) {
    if (typeof value !== 'object' || value === null || Array.isArray(value) || !Object.hasOwn(value, key))
      return undefined
    value = value[key]
  }
  return value
}

/** True when `doc` satisfies `filter`. The reference semantics every backend must reproduce. */
export function matches(filter: NormalisedFilter, doc: Document): boolean {
  switch (filter.kind) {
    case 'true':
      return true
    case 'and':
      return filter.items.every((f) => matches(f, doc))
    case 'or':
      return filter.items.some((f) => matches(f, doc))
    case 'not':
      return !matches(filter.item, doc)
    case 'exists':
      return getPath(doc, filter.path) !== undefined
    case 'eq': {
      const v = getPath(doc, filter.path)
      return v !== undefined && jsonEqual(v, filter.value)
    }
    case 'in': {
      const v = getPath(doc, filter.path)
      return v !== undefined && filter.values.some((x) => jsonEqual(v, x))
    }
    case 'cmp': {
      const v = getPath(doc, filter.path)
      if (v === undefined || typeClass(v) !== typeClass(filter.value)) return false
      const c = compareValues(v, filter.value)
      switch (filter.op) {
        case '>':
          return c > 0
        case '>=':
          return c >= 0
        case '<':
          return c < 0
        case '<=':
          return c <= 0
      }
    }
  }
}

/** A value's JSON type; ordering operators only match values of the same type. */
export function typeClass(v: JsonValue): 'null' | 'boolean' | 'number' | 'string' | 'array' | 'object' {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'array'
  return typeof v as 'boolean' | 'number' | 'string' | 'object'
}

/**
 * Rank of a value's type in the sort order:
 * missing/null < false < true < numbers < strings < arrays/objects.
 */
export function typeRank(v: JsonValue | undefined): number {
  if (v === undefined || v === null) return 0
  switch (typeof v) {
    case 'boolean':
      return v ? 2 : 1
    case 'number':
      return 3
    case 'string':
      return 4
    default:
      return 5
  }
}

/**
 * Orders two values as queries sort them. Strings compare by code point (the
 * order of their UTF-8 bytes, as SQLite sorts text); arrays and objects sort
 * after every scalar, by their JSON text.
 */
export function compareValues(a: JsonValue | undefined, b: JsonValue | undefined): number {
  const ra = typeRank(a)
  const rb = typeRank(b)
  if (ra !== rb) return ra - rb
  switch (ra) {
    case 3:
      return (a as number) - (b as number)
    case 4:
      return compareStrings(a as string, b as string)
    case 5:
      return compareStrings(JSON.stringify(a), JSON.stringify(b))
    default:
      return 0
  }
}

/** Code point order (= UTF-8 byte order), unlike `<` on strings, which compares UTF-16 units. */
export function compareStrings(a: string, b: string): number {
  if (a === b) return 0
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x !== y) return fixup(x) - fixup(y)
  }
  return a.length - b.length
}

// Moves surrogates above the rest of the BMP, so code units compare like code points.
function fixup(c: number): number {
  if (c >= 0xe000) return c - 0x800
  if (c >= 0xd800) return c + 0x2000
  return c
}

/** A comparator for sort keys, ending with `_id` ascending. */
export function makeComparator(orderBy: readonly SortKey[]): (a: Document, b: Document) => number {
  return (a, b) => {
    for (const key of orderBy) {
      const c = compareValues(getPath(a, key.path), getPath(b, key.path))
      if (c !== 0) return key.direction === 'desc' ? -c : c
    }
    return compareStrings(a._id, b._id)
  }
}

/** Filters, sorts and pages documents in memory, with the same results a backend gives. */
export function applyQueryInMemory(query: CompiledQuery, docs: readonly Document[]): Document[] {
  const kept = docs.filter((d) => matches(query.filter, d)).sort(makeComparator(query.orderBy))
  const end = query.limit === undefined ? undefined : query.offset + query.limit
  return query.offset > 0 || end !== undefined ? kept.slice(query.offset, end) : kept
}
