import { ErrorCode, MeshmirrorError } from '../errors.js'
import type { ColumnType, ModelInfo } from './model-definition.js'
import type { Row, RowValue } from './repository.js'

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
      return value
    case 'object':
      if (value instanceof Date) {
        if (Number.isNaN(value.getTime())) throw badValue('an invalid Date', model, column)
        return value.toISOString()
      }
      if (Buffer.isBuffer(value)) return value
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

/** Converts a stored value back to what adapters see. */
export function decodeValue(value: unknown, type: ColumnType): RowValue {
  if (value === null || value === undefined) return null
  if (type === 'boolean' && (typeof value === 'number' || typeof value === 'bigint')) return value !== 0 && value !== 0n
  if (type === 'json' && typeof value === 'string' && (value.startsWith('{') || value.startsWith('['))) {
    try {
      return JSON.parse(value) as RowValue
    } catch {
      return value
    }
  }
  if (typeof value === 'bigint') return Number(value)
  if (Buffer.isBuffer(value)) return value.toString('base64')
  return value as RowValue
}

/** Decodes a row read from SQLite, in place. */
export function decodeRow(model: ModelInfo, raw: Record<string, unknown>): Row {
  for (const key of Object.keys(raw)) {
    const v = raw[key]
    if (v === null) continue
    const type = model.columns.get(key) ?? 'any'
    // Plain numbers and strings pass through unless the column type converts them.
    if (typeof v === 'number' && type !== 'boolean') continue
    if (typeof v === 'string' && type !== 'json') continue
    raw[key] = decodeValue(v, type)
  }
  return raw as Row
}
