import { ErrorCode, MeshmirrorError } from '../errors.js'
import type { ColumnType, ModelInfo } from './model-definition.js'
import type { Row, RowValue } from './repository.js'
import { bindLooseNumber, bytesToJson, fromTagged, intToJson, realToJson } from './value-codec.js'

/** A value better-sqlite3 can bind. */
export type SqlValue = string | number | bigint | Buffer | null

/** Converts one row value to what SQLite stores for a column of `type`. */
export function encodeValue(value: unknown, type: ColumnType, model: string, column: string): SqlValue {
  if (value === null || value === undefined) return null
  switch (typeof value) {
    case 'boolean':
      return value ? 1 : 0
    case 'string':
    case 'bigint':
      return value
    case 'number':
      if (!Number.isFinite(value)) throw badValue(`${value} is not a finite number`, model, column)
      // A column without a type keeps the class it is given, and a JS number binds as REAL.
      return type === 'any' ? bindLooseNumber(value) : value
    case 'object':
      if (value instanceof Date) {
        if (Number.isNaN(value.getTime())) throw badValue('an invalid Date', model, column)
        return value.toISOString()
      }
      if (Buffer.isBuffer(value)) return value
      if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength)
      if (!Array.isArray(value)) {
        const exact = fromTagged(value as Record<string, RowValue>)
        if (exact !== undefined) return exact
      }
      return JSON.stringify(value)
    default:
      throw badValue(`a ${typeof value} (${type} column)`, model, column)
  }
}

function badValue(what: string, model: string, column: string): MeshmirrorError {
  return new MeshmirrorError(ErrorCode.INVALID_MODEL, `Cannot store ${what} in ${model}.${column}.`, {
    details: { model, column },
  })
}

/**
 * Converts a stored value (read with safe integers: INTEGER as bigint, REAL
 * as number) back to what adapters see. Values JSON cannot hold exactly
 * become tagged values (see value-codec.ts).
 */
export function decodeValue(value: unknown, type: ColumnType): RowValue {
  if (value === null || value === undefined) return null
  switch (typeof value) {
    case 'bigint':
      return type === 'boolean' ? value !== 0n : intToJson(value)
    case 'number':
      if (type === 'boolean') return value !== 0
      // Only a column without a type can hold a REAL 2.0 that a plain 2 would not give back.
      return Number.isFinite(value) && (type !== 'any' || !Number.isInteger(value)) ? value : realToJson(value)
    case 'string':
      if (type === 'json' && (value.startsWith('{') || value.startsWith('['))) {
        try {
          return JSON.parse(value) as RowValue
        } catch {
          return value
        }
      }
      return value
    case 'object':
      if (value instanceof Uint8Array) return bytesToJson(value)
      return oldRowValue(value as Record<string, unknown>)
    default:
      return value as RowValue
  }
}

/** The tagged forms the capture triggers write into an update's old row (see change-capture.ts). */
function oldRowValue(value: Record<string, unknown>): RowValue {
  if (typeof value.$hex === 'string') return bytesToJson(Buffer.from(value.$hex, 'hex'))
  if (typeof value.$int === 'string') return intToJson(BigInt(value.$int))
  return value as RowValue
}

/** Decodes a row read from SQLite (or an old row captured by the triggers), in place. */
export function decodeRow(model: ModelInfo, raw: Record<string, unknown>): Row {
  for (const key of Object.keys(raw)) {
    const v = raw[key]
    if (v === null) continue
    const type = model.columns.get(key) ?? 'any'
    // Plain reals and strings pass through unless the column type converts them.
    if (typeof v === 'number' && type !== 'boolean' && type !== 'any' && Number.isFinite(v)) continue
    if (typeof v === 'string' && type !== 'json') continue
    raw[key] = decodeValue(v, type)
  }
  return raw as Row
}
