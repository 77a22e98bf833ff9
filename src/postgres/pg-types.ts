import { ErrorCode, MeshmirrorError } from '../errors.js'
import type { JsonObject } from '../mesh/document.js'
import type { ColumnType } from '../repository/model-definition.js'
import type { RowValue } from '../repository/repository.js'
import { bytesToJson, fromTagged, intToJson, realToJson } from '../repository/value-codec.js'

/**
 * How a Postgres column's values travel as JSON (in documents, and so to a
 * SQLite till and back). Every value is read as Postgres's own text output
 * (the pool parses nothing itself) and converted here, so a value never
 * passes through a lossy conversion on the way:
 *
 * | Postgres type                         | kind        | JSON in the mesh                               | pairs with on a SQLite till |
 * | ------------------------------------- | ----------- | ---------------------------------------------- | --------------------------- |
 * | smallint, integer                     | `int`       | number                                         | INTEGER                     |
 * | bigint                                | `int`       | number; `{"$int": "…"}` beyond ±(2^53 − 1)      | INTEGER                     |
 * | numeric, decimal                      | `numeric`   | string of the exact decimal (`"12.50"`)         | TEXT                        |
 * | real, double precision                | `float`     | number; `{"$real": "Infinity"}` for ±infinity   | REAL                        |
 * | text, varchar, char, uuid, others     | `text`      | string                                         | TEXT                        |
 * | boolean                               | `bool`      | `true` / `false` (accepts 0 and 1 written)      | INTEGER 0/1 or BOOLEAN      |
 * | timestamptz                           | `timestamptz` | ISO-8601 in UTC, `2024-01-05T10:00:00.000Z` (µs kept) | TEXT                   |
 * | timestamp                             | `timestamp` | ISO-8601 without zone, `2024-01-05T10:00:00.000` | TEXT                       |
 * | date                                  | `date`      | `2024-01-05`                                    | TEXT                        |
 * | json, jsonb                           | `json`      | the JSON value itself                          | TEXT declared JSON          |
 * | bytea                                 | `bytes`     | `{"$bytes": "<base64>"}`                        | BLOB                        |
 */
export type PgKind =
  | 'int'
  | 'numeric'
  | 'float'
  | 'text'
  | 'bool'
  | 'timestamptz'
  | 'timestamp'
  | 'date'
  | 'json'
  | 'bytes'

/** A column as the catalog describes it. */
export interface PgColumn {
  name: string
  /** `format_type()` of the column: usable in a cast (`numeric(10,2)`, `character varying(20)`). */
  sqlType: string
  kind: PgKind
  notNull: boolean
  hasDefault: boolean
}

/** The kind of a column from its type's name in `pg_type` (for a domain: its base type). */
export function kindOf(typeName: string): PgKind {
  switch (typeName) {
    case 'int2':
    case 'int4':
    case 'int8':
      return 'int'
    case 'numeric':
      return 'numeric'
    case 'float4':
    case 'float8':
      return 'float'
    case 'bool':
      return 'bool'
    case 'timestamptz':
      return 'timestamptz'
    case 'timestamp':
      return 'timestamp'
    case 'date':
      return 'date'
    case 'json':
    case 'jsonb':
      return 'json'
    case 'bytea':
      return 'bytes'
    default:
      return 'text'
  }
}

/** The repository column type a Postgres column reads as (what a table mapping checks documents against). */
export function columnTypeOf(kind: PgKind): ColumnType {
  switch (kind) {
    case 'int':
      return 'integer'
    case 'float':
      return 'real'
    case 'bool':
      return 'boolean'
    case 'json':
      return 'json'
    case 'numeric':
    case 'bytes':
      return 'any'
    default:
      return 'text'
  }
}

/** The Postgres type a declared model column gets when the repository creates its table. */
export function sqlTypeOf(type: ColumnType): string {
  switch (type) {
    case 'integer':
      return 'bigint'
    case 'real':
      return 'double precision'
    case 'boolean':
      return 'boolean'
    case 'json':
      return 'jsonb'
    default:
      return 'text'
  }
}

/** Kinds a primary-key column may have: their text is the same in SQL (the capture triggers) and here. */
export const KEY_KINDS: ReadonlySet<PgKind> = new Set(['int', 'numeric', 'text', 'date'])

const TS_RE =
  /^(\d{4,})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?(?:([+-])(\d\d)(?::?(\d\d))?(?::?(\d\d))?)?( BC)?$/

const pad = (n: number, width = 2) => String(n).padStart(width, '0')

/**
 * A timestamp's text as ISO-8601: `2024-01-05T10:00:00.000Z` (UTC) for
 * timestamptz, without the `Z` for a timestamp. Milliseconds always, the
 * microseconds when there are any, so a value the app wrote with
 * `toISOString()` comes back as it was written.
 */
export function isoTimestamp(text: string, zoned: boolean): string {
  const m = TS_RE.exec(text)
  if (!m || m[12] !== undefined) return text // infinity, BC: as Postgres writes them
  const [, y, mo, d, h, mi, s, frac = '', sign, oh, om, os] = m
  const micros = frac.padEnd(6, '0')
  let ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s))
  if (Number(y) < 100) {
    const dt = new Date(ms)
    dt.setUTCFullYear(Number(y))
    ms = dt.getTime()
  }
  if (sign) {
    const offset = (Number(oh) * 3600 + Number(om ?? 0) * 60 + Number(os ?? 0)) * 1000
    ms += sign === '+' ? -offset : offset
  }
  const dt = new Date(ms)
  const year = dt.getUTCFullYear()
  const fraction = micros.endsWith('000') ? micros.slice(0, 3) : micros
  const date = `${year > 9999 ? `+${pad(year, 6)}` : pad(year, 4)}-${pad(dt.getUTCMonth() + 1)}-${pad(dt.getUTCDate())}`
  return `${date}T${pad(dt.getUTCHours())}:${pad(dt.getUTCMinutes())}:${pad(dt.getUTCSeconds())}.${fraction}${zoned ? 'Z' : ''}`
}

/** A value as Postgres writes it in text (the session is UTC, ISO dates, hex bytea), as adapters see it. */
export function decodePg(text: string | null, kind: PgKind): RowValue {
  if (text === null) return null
  switch (kind) {
    case 'int': {
      const n = Number(text)
      return Number.isSafeInteger(n) ? n : intToJson(BigInt(text))
    }
    case 'float': {
      const n = Number(text)
      return Number.isFinite(n) ? n : realToJson(n)
    }
    case 'bool':
      return text === 't' || text === 'true'
    case 'timestamptz':
      return isoTimestamp(text, true)
    case 'timestamp':
      return isoTimestamp(text, false)
    case 'json':
      return JSON.parse(text) as RowValue
    case 'bytes':
      return bytesToJson(Buffer.from(text.startsWith('\\x') ? text.slice(2) : text, 'hex'))
    default:
      return text
  }
}

/** A value a column cannot hold: refused with this reason, nothing written. */
export class UnrepresentableValue extends MeshmirrorError {
  constructor(what: string, table: string, column: PgColumn) {
    super(ErrorCode.DOCUMENT_REJECTED, `Cannot store ${what} in ${table}.${column.name} (${column.sqlType}).`, {
      details: { table, column: column.name, type: column.sqlType },
    })
  }
}

/**
 * A row value as the text parameter Postgres parses for the column (null
 * for NULL). What the column cannot hold at all throws
 * {@link UnrepresentableValue}; text Postgres itself refuses (`'abc'` for an
 * integer) fails the statement with Postgres's own reason.
 */
export function encodePg(value: unknown, column: PgColumn, table: string): string | null {
  if (value === null || value === undefined) return null
  const bad = (what: string) => new UnrepresentableValue(what, table, column)
  if (column.kind === 'json') return JSON.stringify(value)
  switch (typeof value) {
    case 'string':
      return value
    case 'boolean':
      if (column.kind === 'bool' || column.kind === 'text') return value ? 'true' : 'false'
      if (column.kind === 'int') return value ? '1' : '0'
      throw bad(`a boolean`)
    case 'bigint':
      return value.toString()
    case 'number':
      if (!Number.isFinite(value)) {
        if (column.kind === 'float') return Number.isNaN(value) ? 'NaN' : value > 0 ? 'Infinity' : '-Infinity'
        throw bad(`${value}`)
      }
      if (column.kind === 'bool') {
        if (value === 0 || value === 1) return value === 1 ? 'true' : 'false'
        throw bad(`the number ${value} (a boolean holds 0 or 1)`)
      }
      if (column.kind === 'bytes') throw bad(`the number ${value}`)
      return String(value)
    case 'object': {
      if (value instanceof Date) return value.toISOString()
      if (Buffer.isBuffer(value) || value instanceof Uint8Array) {
        if (column.kind !== 'bytes') throw bad('bytes')
        return `\\x${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')}`
      }
      const exact = Array.isArray(value) ? undefined : fromTagged(value as JsonObject)
      if (exact === undefined) throw bad(Array.isArray(value) ? 'an array' : 'an object')
      if (Buffer.isBuffer(exact)) {
        if (column.kind !== 'bytes') throw bad('bytes')
        return `\\x${exact.toString('hex')}`
      }
      if (typeof exact === 'number' && !Number.isFinite(exact)) {
        if (column.kind !== 'float') throw bad(String(exact))
        return exact > 0 ? 'Infinity' : '-Infinity'
      }
      if (column.kind === 'bytes') throw bad(String(exact))
      return String(exact)
    }
    default:
      throw bad(`a ${typeof value}`)
  }
}
