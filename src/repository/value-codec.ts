import type { JsonObject, JsonValue } from '../mesh/document.js'

/**
 * Exact SQLite values in JSON. Rows read from SQLite and the documents made
 * from them are JSON; a stored value JSON cannot hold exactly becomes a
 * tagged one-key object, and every other value stays a plain JSON number or
 * string, so documents remain readable by apps on other platforms:
 *
 * | SQLite value                                   | JSON                              |
 * | ---------------------------------------------- | --------------------------------- |
 * | INTEGER within ±(2^53 − 1)                     | number `42`                       |
 * | INTEGER beyond that                            | `{"$int": "9007199254740993"}`    |
 * | REAL with a fraction                           | number `1.5`                      |
 * | REAL with an integral value, untyped column    | `{"$real": 2}`                    |
 * | REAL ±infinity                                 | `{"$real": "Infinity"}`           |
 * | TEXT                                           | string                            |
 * | BLOB                                           | `{"$bytes": "<base64>"}`          |
 * | NULL                                           | `null`                            |
 *
 * A REAL with an integral value needs the tag only in a column that keeps
 * whatever class it is given (no declared type, or `ANY`, or a NUMERIC-like
 * type): a REAL column turns `2` back into `2.0` by itself.
 */

/** A tagged value: one of the one-key objects above. */
export type TaggedValue = { $int: string } | { $real: number | string } | { $bytes: string }

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)
const MIN_SAFE = -MAX_SAFE
const INT_RE = /^-?(0|[1-9][0-9]{0,18})$/
const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/
const INT64_MIN = -(2n ** 63n)
const INT64_MAX = 2n ** 63n - 1n

/** An INTEGER read as a bigint: a plain number when exact, `{"$int": …}` otherwise. */
export function intToJson(v: bigint): number | TaggedValue {
  return v >= MIN_SAFE && v <= MAX_SAFE ? Number(v) : { $int: v.toString() }
}

/** A REAL that must stay REAL: `{"$real": …}`. */
export function realToJson(v: number): TaggedValue {
  return { $real: Number.isFinite(v) ? v : v > 0 ? 'Infinity' : '-Infinity' }
}

/** A BLOB: `{"$bytes": "<base64>"}`. */
export function bytesToJson(v: Uint8Array): TaggedValue {
  return { $bytes: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') }
}

/**
 * The SQLite value a tagged object stands for, or undefined when `v` is not
 * a well-formed tagged value (then it is an ordinary JSON object).
 */
export function fromTagged(v: JsonObject): bigint | number | Buffer | undefined {
  let key: string | undefined
  for (const k in v) {
    if (key !== undefined) return undefined
    key = k
  }
  const inner = key === undefined ? undefined : v[key]
  switch (key) {
    case '$int': {
      if (typeof inner !== 'string' || !INT_RE.test(inner)) return undefined
      const n = BigInt(inner)
      return n >= INT64_MIN && n <= INT64_MAX ? n : undefined
    }
    case '$real':
      if (typeof inner === 'number') return inner
      if (inner === 'Infinity') return Number.POSITIVE_INFINITY
      if (inner === '-Infinity') return Number.NEGATIVE_INFINITY
      return undefined
    case '$bytes':
      return typeof inner === 'string' && inner.length % 4 === 0 && BASE64_RE.test(inner)
        ? Buffer.from(inner, 'base64')
        : undefined
    default:
      return undefined
  }
}

/** True when `v` is a well-formed tagged value. */
export function isTagged(v: JsonValue | undefined): v is TaggedValue {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && fromTagged(v) !== undefined
}

/**
 * What to bind for a plain number in a column that keeps the class it is
 * given: better-sqlite3 binds every JS number as REAL, so an integral
 * number is bound as a bigint to be stored as INTEGER.
 */
export function bindLooseNumber(v: number): number | bigint {
  return Number.isSafeInteger(v) ? BigInt(v) : v
}

/** A key value as document id text: an INTEGER key beyond ±(2^53 − 1) keeps every digit. */
export function keyText(v: JsonValue | undefined): string {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && typeof v.$int === 'string' ? v.$int : String(v)
}

/** A numeric key read from document id text: exact, as a tagged INTEGER, when a number would round it. */
export function keyFromText(id: string): JsonValue {
  const n = Number(id)
  return Number.isInteger(n) && !Number.isSafeInteger(n) && INT_RE.test(id) ? { $int: id } : n
}
