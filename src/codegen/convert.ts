import { rejectDocument } from '../bridge/adapter.js'
import type { Document, JsonValue } from '../mesh/document.js'
import type { RowValue } from '../repository/repository.js'
import { isTagged } from '../repository/value-codec.js'
import type { FieldSpec, FieldType } from './model-spec.js'

/**
 * Conversions between repository values and document values by declared
 * type. Generated adapters and `defineModel` both use these, so a model
 * behaves the same whichever way it was defined.
 */

/** The first of `names` the document has, or undefined. */
export function pick(doc: Document, names: readonly string[]): JsonValue | undefined {
  for (const n of names) if (Object.hasOwn(doc, n)) return doc[n]
  return undefined
}

/** A repository value as a document value. */
export function toDocValue(value: RowValue | undefined, type: FieldType): JsonValue {
  if (value === undefined || value === null) return null
  switch (type.kind) {
    case 'boolean':
      return typeof value === 'number' ? value !== 0 : value
    case 'date':
      return typeof value === 'number' ? new Date(value).toISOString() : value
    case 'json':
      return typeof value === 'string' ? parseJsonOr(value) : value
    case 'array':
      return typeof value === 'string' ? parseJsonOr(value) : value
    default:
      return value
  }
}

function parseJsonOr(text: string): JsonValue {
  try {
    return JSON.parse(text) as JsonValue
  } catch {
    return text
  }
}

/** The tagged value `value` is, or an empty object. */
function tagged(value: JsonValue): object {
  return isTagged(value) ? value : {}
}

function describe(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  return typeof v === 'string'
    ? `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`
    : `${typeof v} ${JSON.stringify(v)}`
}

/** Checks and converts a document value for the repository; rejects the document when it does not fit. */
export function fromDocValue(value: JsonValue, type: FieldType, field: string): RowValue {
  const bad = (): never => rejectDocument(`${field}: expected ${typeName(type)}, got ${describe(value)}`, { field })
  switch (type.kind) {
    case 'string':
      return typeof value === 'string' ? value : bad()
    // A big INTEGER or a REAL kept REAL arrives tagged (value-codec.ts); the repository stores it exactly.
    case 'number':
      return typeof value === 'number' || '$int' in tagged(value) || '$real' in tagged(value) ? value : bad()
    case 'integer':
      return (typeof value === 'number' && Number.isInteger(value)) || '$int' in tagged(value) ? value : bad()
    case 'boolean':
      if (typeof value === 'boolean') return value
      return value === 0 || value === 1 ? value === 1 : bad()
    case 'date': {
      if (typeof value !== 'string' && typeof value !== 'number') return bad()
      const t = new Date(value).getTime()
      return Number.isNaN(t) ? bad() : new Date(t).toISOString()
    }
    case 'enum':
      return (typeof value === 'string' || typeof value === 'number') && type.values.includes(value) ? value : bad()
    case 'array':
      if (!Array.isArray(value)) return bad()
      return value.map((v, i) => fromDocValue(v, type.of, `${field}[${i}]`) as JsonValue)
    case 'json':
      return value
  }
}

export function typeName(type: FieldType): string {
  switch (type.kind) {
    case 'enum':
      return `one of ${type.values.map((v) => JSON.stringify(v)).join(', ')}`
    case 'array':
      return `an array of ${typeName(type.of)}`
    case 'date':
      return 'a date (ISO string)'
    case 'json':
      return 'a JSON value'
    case 'integer':
      return 'an integer'
    default:
      return `a ${type.kind}`
  }
}

/** Reads one field of a document into a row value, applying optional/nullable rules. */
export function readField(
  doc: Document,
  f: Pick<FieldSpec, 'docField' | 'aliases' | 'type' | 'optional' | 'nullable'>,
): RowValue {
  const value = pick(doc, [f.docField, ...f.aliases])
  if (value === undefined) {
    if (f.optional || f.nullable) return null
    return rejectDocument(`${f.docField} is missing`, { field: f.docField })
  }
  if (value === null) {
    if (f.nullable || f.optional) return null
    return rejectDocument(`${f.docField} is null`, { field: f.docField })
  }
  return fromDocValue(value, f.type, f.docField)
}
