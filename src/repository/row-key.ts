import { ErrorCode, MeshmirrorError } from '../errors.js'
import type { JsonValue } from '../mesh/document.js'
import type { ModelInfo } from './model-definition.js'
import { quoteIdent } from './model-definition.js'
import { keyText } from './value-codec.js'

/** What identifies a model's rows. */
export type KeyedModel = Pick<ModelInfo, 'name' | 'keys'>

/**
 * A row's identity as a document id.
 *
 * A single-column key is its value as a string (`42`, `sku-1`). A composite
 * key is the JSON array of its values in key-column order
 * (`[3,"2024-01-05"]`): stable, reversible, and the same text SQLite's
 * `json_array()` makes, so change-capture triggers compute it in SQL.
 */
export function rowId(model: KeyedModel, row: Record<string, unknown>): string {
  const keys = model.keys
  if (keys.length === 1) {
    const v = row[keys[0]!]
    if (v === null || v === undefined || v === '') throw missingKey(model, keys[0]!)
    // An integer beyond 2^53 is read exactly, as { $int: "…" }: its id is its digits.
    return keyText(v as JsonValue)
  }
  const values = keys.map((k) => {
    const v = row[k]
    if (v === null || v === undefined) throw missingKey(model, k)
    if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString()
    if (typeof v !== 'string' && typeof v !== 'number') {
      throw new MeshmirrorError(
        ErrorCode.INVALID_MODEL,
        `A ${model.name} row's key column ${k} holds a ${typeof v}; key columns hold text or numbers.`,
        { details: { model: model.name, column: k } },
      )
    }
    return v
  })
  return JSON.stringify(values)
}

function missingKey(model: KeyedModel, column: string): MeshmirrorError {
  return new MeshmirrorError(
    ErrorCode.INVALID_MODEL,
    `A ${model.name} row has no value for its key column ${column}.`,
    {
      details: { model: model.name, column },
    },
  )
}

/** The key-column values a document id stands for (the inverse of {@link rowId}). */
export function keyValues(model: KeyedModel, id: string): (string | number)[] {
  if (model.keys.length === 1) return [id]
  let parsed: unknown
  try {
    parsed = JSON.parse(id)
  } catch {
    parsed = undefined
  }
  if (
    !Array.isArray(parsed) ||
    parsed.length !== model.keys.length ||
    !parsed.every((v) => typeof v === 'string' || typeof v === 'number')
  ) {
    throw new MeshmirrorError(
      ErrorCode.DOCUMENT_REJECTED,
      `${JSON.stringify(id)} is not an id of ${model.name}: its key (${model.keys.join(', ')}) is written as a JSON array of ${model.keys.length} values.`,
      { details: { model: model.name, id } },
    )
  }
  return parsed as (string | number)[]
}

/** `"a" = ? AND "b" = ?` over the key columns (of `alias`, when given). */
export function keyCondition(model: ModelInfo, alias?: string): string {
  const prefix = alias ? `${alias}.` : ''
  return model.keys.map((k) => `${prefix}${quoteIdent(k)} = ?`).join(' AND ')
}

/**
 * SQL computing a row's document id from its key columns, e.g. `NEW."id"` or
 * `json_array(t."a", t."b")`. A column holding a `local` model's key becomes
 * that row's document id: the mapped id of a row received from another
 * device, else `<device>:<key>`. With `created`, the model's own `local` key
 * is taken as this device's (a row the app just inserted).
 */
export function idExpression(model: ModelInfo, ref: string, device = '', created = false): string {
  const cols = model.keys.map((k) => {
    const col = `${ref}.${quoteIdent(k)}`
    const local = model.localRefs.get(k)
    if (local === undefined) return col
    const own = `'${device}:' || ${col}`
    if (created && local === model.name) return own
    return `coalesce((SELECT doc FROM _meshmirror_keys WHERE model = '${local}' AND key = ${col}), ${own})`
  })
  return cols.length === 1 ? cols[0]! : `json_array(${cols.join(', ')})`
}

/** The key columns, quoted and comma-separated (for ORDER BY and ON CONFLICT). */
export function keyList(model: ModelInfo, alias?: string): string {
  const prefix = alias ? `${alias}.` : ''
  return model.keys.map((k) => `${prefix}${quoteIdent(k)}`).join(', ')
}
