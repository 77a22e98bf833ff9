import type { Document, JsonValue } from '../mesh/document.js'
import { canonicalJson } from '../mesh/json.js'

/**
 * A document as the port hands it out, from a Ditto query result value.
 *
 * Ditto materialises integers of magnitude 2^53 or more as `BigInt`; they
 * become (rounded) numbers, as JSON would have them. An `_id` that is not a
 * string (written by another Ditto app) becomes its canonical JSON text.
 */
export function fromDitto(value: unknown): Document {
  const doc = plain(value) as Record<string, JsonValue>
  const id = doc._id
  return { ...doc, _id: typeof id === 'string' ? id : canonicalJson(id ?? null) }
}

function plain(value: unknown): JsonValue {
  switch (typeof value) {
    case 'bigint':
      return Number(value)
    case 'string':
    case 'number':
    case 'boolean':
      return value
    case 'object': {
      if (value === null) return null
      if (Array.isArray(value)) return value.map(plain)
      if (value instanceof Uint8Array) return Buffer.from(value).toString('base64')
      const out: Record<string, JsonValue> = {}
      for (const [k, v] of Object.entries(value)) out[k] = plain(v)
      return out
    }
    default:
      return null
  }
}
