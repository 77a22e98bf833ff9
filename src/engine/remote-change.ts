import { ErrorCode, MeshmirrorError, ValidationError } from '../errors.js'
import {
  assertCollection,
  assertFieldNameOnce,
  assertJsonValue,
  assertSize,
  isJsonScalar,
  normaliseId,
} from '../mesh/validate.js'
import { MAX_COLLISIONS } from './collisions.js'
import { isClock } from './hlc.js'
import { isSiteId } from './site-id.js'
import type { RemoteChange } from './types.js'

const MAX_CLOCKS = 4096

function invalid(message: string, cause?: unknown): MeshmirrorError {
  return new ValidationError(ErrorCode.INVALID_CHANGE, `Invalid remote change: ${message}`, { cause })
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false
  const proto = Object.getPrototypeOf(v)
  return proto === Object.prototype || proto === null
}

function isIndex(v: unknown, length: number): v is number {
  return Number.isInteger(v) && (v as number) >= 0 && (v as number) < length
}

/**
 * Checks a change received from another replica before anything is merged.
 * Throws `INVALID_CHANGE` naming the problem.
 */
export function assertRemoteChange(change: unknown, maxDocumentBytes: number): asserts change is RemoteChange {
  checkRemoteChange(change, maxDocumentBytes)
}

/**
 * `assertRemoteChange`, returning the document's JSON text it measured (null
 * for a removed document), so that it need not be encoded again. `docJson`
 * is `JSON.stringify(change.doc)` when the caller has it already (the limits
 * of a replication link measure it): it is checked instead of encoding the
 * document again.
 */
export function checkRemoteChange(change: unknown, maxDocumentBytes: number, docJson?: string): string | null {
  if (!isPlainObject(change)) throw invalid('not an object')
  const { collection, id, doc, meta } = change
  try {
    assertCollection(collection)
    if (typeof id !== 'string' || normaliseId(id) !== id) throw invalid('id is not a string')
  } catch (e) {
    throw e instanceof MeshmirrorError && e.code === ErrorCode.INVALID_CHANGE ? e : invalid('bad collection or id', e)
  }
  const where = `${collection}/${id}`
  if (!isPlainObject(meta)) throw invalid(`${where}: meta is not an object`)
  const { t, i, d, c, f, n, v, h, cx, p, x } = meta
  if (!Array.isArray(t) || t.length === 0 || t.length > MAX_CLOCKS || !t.every(isClock)) {
    throw invalid(`${where}: meta.t is not a list of clocks`)
  }
  if (!isIndex(i, t.length)) throw invalid(`${where}: meta.i is not a clock index`)
  if (d !== undefined && !isIndex(d, t.length)) throw invalid(`${where}: meta.d is not a clock index`)
  if (c !== undefined && !isIndex(c, t.length)) throw invalid(`${where}: meta.c is not a clock index`)
  if (!isPlainObject(f)) throw invalid(`${where}: meta.f is not an object`)
  for (const field of Object.keys(f)) {
    assertField(field, where)
    if (!isIndex(f[field], t.length)) throw invalid(`${where}: meta.f.${field} is not a clock index`)
  }
  if (n !== undefined) {
    if (!isPlainObject(n)) throw invalid(`${where}: meta.n is not an object`)
    for (const field of Object.keys(n)) {
      assertField(field, where)
      const c = n[field]
      if (!isPlainObject(c) || !isPlainObject(c.s)) throw invalid(`${where}: counter ${field} is malformed`)
      if (c.b !== undefined) {
        if (!Object.hasOwn(f, field)) throw invalid(`${where}: counter ${field} has a base but no clock`)
        assertJson(c.b, where)
      }
      for (const site of Object.keys(c.s)) {
        const e = c.s[site]
        if (
          !isSiteId(site) ||
          !Array.isArray(e) ||
          e.length !== 3 ||
          !(e[0] === '' || isClock(e[0])) ||
          typeof e[1] !== 'number' ||
          !Number.isFinite(e[1]) ||
          !isClock(e[2])
        ) {
          throw invalid(`${where}: counter ${field} entry for ${JSON.stringify(site)} is malformed`)
        }
      }
    }
  }
  assertVector(v, `${where}: meta.v`)
  if (cx !== undefined) assertVector(cx, `${where}: meta.cx`)
  if (p !== undefined) {
    if (!isPlainObject(p)) throw invalid(`${where}: meta.p is not an object`)
    for (const field of Object.keys(p)) {
      assertField(field, where)
      if (p[field] !== -1 && !isIndex(p[field], t.length))
        throw invalid(`${where}: meta.p.${field} is not a clock index`)
    }
  }
  if (x !== undefined) assertCollisions(x, where, maxDocumentBytes)
  const live = d === undefined || (t[c ?? i] as string) > (t[d] as string)
  if (doc === null) {
    if (live) throw invalid(`${where}: the document is live but has no content`)
    if (h !== undefined) {
      if (!isPlainObject(h)) throw invalid(`${where}: meta.h is not an object`)
      for (const field of Object.keys(h)) {
        if (!Object.hasOwn(f, field)) throw invalid(`${where}: meta.h.${field} has no clock in meta.f`)
      }
      assertJson(h, where)
      try {
        assertSize(JSON.stringify(h), maxDocumentBytes, collection as string, id)
      } catch (e) {
        throw invalid(`${where}: kept fields too large`, e)
      }
    }
    return null
  }
  if (h !== undefined) throw invalid(`${where}: meta.h is only for a removed document`)
  if (!live) throw invalid(`${where}: the document is removed but has content`)
  if (!isPlainObject(doc) || doc._id !== id)
    throw invalid(`${where}: doc is not an object with _id ${JSON.stringify(id)}`)
  const fields = Object.keys(doc)
  for (const field of fields) {
    if (field === '_id') continue
    assertField(field, where)
  }
  // `assertJson(doc, where)`, its checks of the names just made left out: the same problem in the same words.
  for (const field of fields) {
    const value = doc[field]
    if (!isJsonScalar(value)) assertJson(value, `${where}.${field}`, where, 1)
  }
  if (Object.getOwnPropertySymbols(doc).length > 0) assertJson(doc, where)
  const json = docJson ?? JSON.stringify(doc)
  try {
    assertSize(json, maxDocumentBytes, collection as string, id)
  } catch (e) {
    throw invalid(`${where}: document too large`, e)
  }
  return json
}

function assertVector(v: unknown, what: string): void {
  if (!isPlainObject(v)) throw invalid(`${what} is not an object`)
  for (const site of Object.keys(v)) {
    if (!isSiteId(site) || !Number.isSafeInteger(v[site]) || (v[site] as number) < 0) {
      throw invalid(`${what} entry for ${JSON.stringify(site)} is malformed`)
    }
  }
}

function assertCollisions(x: unknown, where: string, maxDocumentBytes: number): void {
  if (!Array.isArray(x) || x.length > MAX_COLLISIONS) throw invalid(`${where}: meta.x is not a list of collisions`)
  for (const e of x) {
    if (
      !Array.isArray(e) ||
      e.length !== 4 ||
      !isClock(e[0]) ||
      !isClock(e[1]) ||
      e[0] <= e[1] ||
      !isPlainObject(e[2]) ||
      !isPlainObject(e[3])
    ) {
      throw invalid(`${where}: meta.x holds a malformed collision`)
    }
    for (const content of [e[2], e[3]]) {
      for (const field of Object.keys(content)) assertField(field, where)
      assertJson(content, where)
      try {
        assertSize(JSON.stringify(content), maxDocumentBytes, where, 'collision')
      } catch (err) {
        throw invalid(`${where}: a collision's content is too large`, err)
      }
    }
  }
}

function assertField(field: string, where: string): void {
  try {
    assertFieldNameOnce(field)
  } catch (e) {
    throw invalid(`${where}: field name ${JSON.stringify(field)} is not allowed`, e)
  }
}

/** Checks `value`, found at `path` (depth `depth`) of the change at `where`. */
function assertJson(value: unknown, path: string, where = path, depth = 0): void {
  try {
    assertJsonValue(value, path, depth)
  } catch (e) {
    throw invalid(`${where}: content is not plain JSON`, e)
  }
}
