import { ErrorCode, ValidationError } from '../errors.js'
import type { DocIdInput, Document, JsonObject, JsonValue } from './document.js'
import type { UpsertMode, UpsertOptions } from './mesh-store.js'

/** Longest accepted collection name. */
export const MAX_COLLECTION_LENGTH = 64
/** Longest accepted field name (one path segment). */
export const MAX_FIELD_LENGTH = 256
/** Longest accepted document id. */
export const MAX_ID_LENGTH = 512
/** Deepest accepted nesting of objects and arrays inside a document. */
export const MAX_DEPTH = 64
/** Default limit on a document's JSON size. */
export const DEFAULT_MAX_DOC_BYTES = 1024 * 1024

const COLLECTION_RE = /^[A-Za-z_][A-Za-z0-9_]*$/
// Path segments may not contain characters that are special in SQLite JSON
// paths or in DQL identifiers, nor control characters.
// biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting them is the point
const BAD_FIELD_RE = /[.$"'`\\[\]\u0000-\u001f\u007f]/
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype'])

/** Throws `INVALID_COLLECTION` unless `name` is a safe collection name. */
export function assertCollection(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !COLLECTION_RE.test(name) || name.length > MAX_COLLECTION_LENGTH) {
    throw new ValidationError(
      ErrorCode.INVALID_COLLECTION,
      `Invalid collection name ${JSON.stringify(String(name))}: use 1-${MAX_COLLECTION_LENGTH} characters from [A-Za-z0-9_], not starting with a digit.`,
      { details: { collection: name } },
    )
  }
}

/** Why `key` cannot be an object key or field name, or undefined when it can. */
function keyProblem(key: string): string | undefined {
  if (key.length === 0) return 'it is empty'
  if (key.length > MAX_FIELD_LENGTH) return `it is longer than ${MAX_FIELD_LENGTH} characters`
  if (FORBIDDEN_KEYS.has(key)) return 'it is reserved (prototype pollution)'
  return undefined
}

/** Throws `INVALID_FIELD` unless `name` can be a top-level field name (not `_id`). */
export function assertFieldName(name: unknown, context = 'field'): asserts name is string {
  const problem =
    typeof name !== 'string'
      ? 'it is not a string'
      : (keyProblem(name) ??
        (BAD_FIELD_RE.test(name)
          ? 'it contains ".", "$", quotes, brackets, backslash or control characters'
          : undefined))
  if (problem) {
    throw new ValidationError(
      ErrorCode.INVALID_FIELD,
      `Invalid ${context} name ${JSON.stringify(String(name))}: ${problem}.`,
      {
        details: { field: name },
      },
    )
  }
}

/** Splits and checks a dotted field path (`'address.city'`). Throws `INVALID_FIELD`. */
export function parseFieldPath(path: unknown): string[] {
  if (typeof path !== 'string' || path.length === 0) {
    throw new ValidationError(ErrorCode.INVALID_FIELD, `Invalid field path ${JSON.stringify(String(path))}.`, {
      details: { field: path },
    })
  }
  const segments = path.split('.')
  for (const s of segments) assertFieldName(s, 'field path segment')
  return segments
}

/** Normalises an id (numbers become decimal strings). Throws `INVALID_ID`. */
export function normaliseId(id: DocIdInput | unknown): string {
  let out: string | undefined
  if (typeof id === 'string') out = id
  else if (typeof id === 'number' && Number.isFinite(id)) out = String(id)
  if (out === undefined || out.length === 0 || out.length > MAX_ID_LENGTH) {
    throw new ValidationError(
      ErrorCode.INVALID_ID,
      `Invalid document id ${safeString(id)}: use a non-empty string of at most ${MAX_ID_LENGTH} characters, or a finite number.`,
      { details: { id: safeString(id) } },
    )
  }
  return out
}

function safeString(v: unknown): string {
  try {
    return typeof v === 'string' ? JSON.stringify(v) : String(v)
  } catch {
    return Object.prototype.toString.call(v)
  }
}

function invalidDoc(path: string, what: string): ValidationError {
  return new ValidationError(
    ErrorCode.INVALID_DOCUMENT,
    `Invalid value at ${path}: ${what}. Documents hold JSON only.`,
    {
      details: { path },
    },
  )
}

/** Throws `INVALID_DOCUMENT` unless `value` is plain JSON (no cycles, no exotic objects, no forbidden keys). */
export function assertJsonValue(value: unknown, path: string, depth = 0): asserts value is JsonValue {
  const problem = jsonProblem(value, depth)
  if (problem) throw invalidDoc(path + problem.at, problem.what)
}

/**
 * Where (the path below `value`) and why `value` is not plain JSON, or
 * undefined. The path is put together only for a problem: most values
 * checked are fine, and naming each of them cost more than the check.
 */
function jsonProblem(value: unknown, depth: number): { at: string; what: string } | undefined {
  if (depth > MAX_DEPTH) return { at: '', what: `nesting deeper than ${MAX_DEPTH} levels (or a cycle)` }
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined
    case 'number':
      return Number.isFinite(value) ? undefined : { at: '', what: `${value} is not a finite number` }
    case 'object': {
      if (value === null) return undefined
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          if (!(i in value)) return { at: `[${i}]`, what: 'a hole in an array' }
          const inner = jsonProblem(value[i], depth + 1)
          if (inner) return { at: `[${i}]${inner.at}`, what: inner.what }
        }
        return undefined
      }
      const proto = Object.getPrototypeOf(value)
      if (proto !== Object.prototype && proto !== null) {
        return {
          at: '',
          what: `a ${proto?.constructor?.name ?? 'non-plain'} object (convert it, e.g. a Date to an ISO string)`,
        }
      }
      for (const key of Object.keys(value)) {
        const problem = keyProblem(key)
        if (problem) return { at: `.${key}`, what: `key ${JSON.stringify(key)} is not allowed: ${problem}` }
        const inner = jsonProblem((value as Record<string, unknown>)[key], depth + 1)
        if (inner) return { at: `.${key}${inner.at}`, what: inner.what }
      }
      if (Object.getOwnPropertySymbols(value).length > 0) return { at: '', what: 'symbol keys' }
      return undefined
    }
    default:
      return { at: '', what: `a ${typeof value}` }
  }
}

// Field names repeat across documents: remember the ones already accepted.
const checkedFieldNames = new Set<string>()

/** `assertFieldName(name)`, remembering the names it accepted: they repeat across documents. */
export function assertFieldNameOnce(name: string): void {
  if (checkedFieldNames.has(name)) return
  assertFieldName(name)
  if (checkedFieldNames.size >= 4096) checkedFieldNames.clear()
  checkedFieldNames.add(name)
}

/** A JSON value that holds no other (what `assertJsonValue` accepts without looking further). */
export function isJsonScalar(v: unknown): boolean {
  return v === null || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))
}

/**
 * Copies the fields of `from` into `into`, leaving out `_id` and fields set
 * to undefined (they are absent, as JSON has no undefined). `check` sees each
 * copied field first and throws to refuse it. Returns `into`.
 */
export function copyFields<T extends Record<string, unknown>>(
  from: Record<string, unknown>,
  into: T,
  check?: (key: string, value: unknown) => void,
): T {
  const out = into as Record<string, unknown>
  for (const key of Object.keys(from)) {
    if (key === '_id') continue
    const value = from[key]
    if (value === undefined) continue
    check?.(key, value)
    out[key] = value
  }
  return into
}

/**
 * Checks one input document and returns its id and its fields (without
 * `_id`, without fields set to undefined). Throws a `ValidationError`.
 */
export function normaliseDocument(input: unknown, where = 'document'): { id: string; fields: JsonObject } {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ValidationError(ErrorCode.INVALID_DOCUMENT, `The ${where} is not an object.`)
  }
  const proto = Object.getPrototypeOf(input)
  if (proto !== Object.prototype && proto !== null) {
    throw new ValidationError(ErrorCode.INVALID_DOCUMENT, `The ${where} is not a plain object.`)
  }
  const record = input as Record<string, unknown>
  if (!('_id' in record)) {
    throw new ValidationError(ErrorCode.INVALID_ID, `The ${where} has no _id. Every document needs an _id.`)
  }
  const id = normaliseId(record._id)
  const fields = copyFields(record, {} as JsonObject, (key, value) => {
    assertFieldNameOnce(key)
    if (!isJsonScalar(value)) assertJsonValue(value, `${where} ${JSON.stringify(id)}.${key}`, 1)
  })
  return { id, fields }
}

/**
 * A plain copy of a mapped document, not checked: `_id` set to `id`, fields
 * set to undefined left out. The bridge hashes an adapter's output in this
 * form; the mesh checks it on write (`normaliseDocument`).
 */
export function mappedDocument(doc: Document, id: string): Document {
  return copyFields(doc, { _id: id } as Document)
}

/** Throws `DOC_TOO_LARGE` when `json` exceeds `maxBytes` (UTF-8). */
export function assertSize(json: string, maxBytes: number, collection: string, id: string): void {
  // Fast path: a string's UTF-8 size is at most 3 bytes per UTF-16 unit.
  if (json.length * 3 <= maxBytes) return
  const bytes = Buffer.byteLength(json, 'utf8')
  if (bytes > maxBytes) {
    throw new ValidationError(
      ErrorCode.DOC_TOO_LARGE,
      `Document ${JSON.stringify(id)} in ${collection} is ${bytes} bytes, over the limit of ${maxBytes}. Split it, or raise maxDocumentBytes.`,
      { details: { collection, id, bytes, maxBytes } },
    )
  }
}

/** Checks `upsert`'s options, as every backend reads them. */
export function checkUpsertOptions(options: UpsertOptions | undefined): { mode: UpsertMode; rewriteEqual: boolean } {
  const mode = options?.mode ?? 'merge'
  if (mode !== 'merge' && mode !== 'replace') {
    throw new ValidationError(
      ErrorCode.INVALID_OPTIONS,
      `Unknown upsert mode ${JSON.stringify(mode)}: use 'merge' or 'replace'.`,
    )
  }
  const rewriteEqual = options?.rewriteEqual ?? false
  if (typeof rewriteEqual !== 'boolean') {
    throw new ValidationError(
      ErrorCode.INVALID_OPTIONS,
      `upsert option rewriteEqual must be a boolean, not ${JSON.stringify(rewriteEqual)}.`,
    )
  }
  return { mode, rewriteEqual }
}

/**
 * A page size both mesh backends accept: `fallback` when absent, else a
 * positive safe integer; anything else throws `INVALID_OPTIONS` (a
 * `ValidationError`, the same on every backend) before anything is read.
 */
export function positiveLimit(limit: unknown, fallback: number): number {
  if (limit === undefined) return fallback
  if (!Number.isSafeInteger(limit) || (limit as number) <= 0) {
    throw new ValidationError(ErrorCode.INVALID_OPTIONS, `limit must be a positive integer, got ${String(limit)}.`)
  }
  return limit as number
}
