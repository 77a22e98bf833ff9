import type { JsonValue } from './document.js'

/** A scalar a filter compares against. */
export type FilterScalar = string | number | boolean | null

/** Comparison operators on one field. */
export interface FieldOperators {
  $eq?: JsonValue
  $ne?: JsonValue
  $gt?: FilterScalar
  $gte?: FilterScalar
  $lt?: FilterScalar
  $lte?: FilterScalar
  $in?: JsonValue[]
  $nin?: JsonValue[]
  $exists?: boolean
  $not?: FieldOperators
}

/**
 * A Mango-style filter (the dialect of CouchDB, PouchDB and RxDB).
 *
 * - `{ field: value }` matches documents whose field equals `value`
 *   (objects and arrays compare structurally).
 * - `{ field: { $gt: 3, $lte: 9 } }`: operators on one field are ANDed.
 * - `{ $and: [...] }`, `{ $or: [...] }`, `{ $not: {...} }` combine filters.
 * - A dotted field (`'address.city'`) reaches into nested objects.
 *
 * Ordering comparisons (`$gt`…) only match values of the same JSON type
 * (numbers with numbers, strings with strings, booleans with booleans); a
 * missing field never matches them. `$ne`/`$nin` match missing fields.
 *
 * @example
 * ```ts
 * { branchId: 1, $or: [{ total: { $gte: 100 } }, { vip: true }] }
 * ```
 */
export type Filter = {
  $and?: Filter[]
  $or?: Filter[]
  $not?: Filter
} & { [field: string]: JsonValue | FieldOperators | Filter[] | Filter | undefined }

/** Sort direction. */
export type SortDirection = 'asc' | 'desc'

/** One sort key. A bare string sorts ascending. */
export type OrderBy = string | { field: string; direction?: SortDirection }

/**
 * A structured query over one collection.
 *
 * Results sort by the given keys, then by `_id`. Across JSON types the order
 * is: missing/null < false < true < numbers < strings < arrays/objects.
 */
export interface Query {
  collection: string
  filter?: Filter
  orderBy?: OrderBy | OrderBy[]
  /** Maximum number of results (a positive integer). */
  limit?: number
  /** Number of leading results to skip (requires `orderBy` to be meaningful). */
  offset?: number
}

/** A filter over one collection, without ordering or paging. */
export interface Scope {
  collection: string
  filter?: Filter
}
