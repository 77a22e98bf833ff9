import type { QueryExecuting } from '@dittolive/ditto'
import { ErrorCode, MeshmirrorError, ValidationError } from '../errors.js'
import type { DocIdInput, Document, DocumentInput, JsonObject, JsonValue } from '../mesh/document.js'
import { compileQuery } from '../mesh/filter.js'
import { applyQueryInMemory } from '../mesh/match.js'
import type { MeshWriter, UpsertOptions, WriteResult } from '../mesh/mesh-store.js'
import type { Query } from '../mesh/query.js'
import {
  assertCollection,
  assertFieldName,
  assertSize,
  checkUpsertOptions,
  normaliseDocument,
  normaliseId,
} from '../mesh/validate.js'
import { fromDitto } from './doc-codec.js'
import { ident, selectScope } from './dql.js'

/** Documents per INSERT statement, ids per `_id IN` list. */
const CHUNK = 500
/** A field can hold a register and a counter at once; UNSET removes the visible one. */
const MAX_UNSET_ROUNDS = 4

/** What a write did, for the change log and the counter-field registry. */
export interface WriteNotes {
  changes: { collection: string; id: string; removed: boolean }[]
  counterFields: { collection: string; field: string }[]
}

export interface WriterContext {
  maxDocumentBytes: number
  /** Counter fields per collection (declared or learned). */
  counters: Map<string, Set<string>>
  removeWith: 'delete' | 'evict'
}

/**
 * The port's operations on a Ditto executor (the store, or a transaction).
 * Writes run inside a Ditto transaction so their reads and writes are atomic.
 */
export class DittoWriter implements MeshWriter {
  constructor(
    readonly executor: QueryExecuting,
    private readonly ctx: WriterContext,
    readonly notes: WriteNotes = { changes: [], counterFields: [] },
  ) {}

  async upsert(collection: string, docs: readonly DocumentInput[], options: UpsertOptions = {}): Promise<WriteResult> {
    const { inputs, mode, rewriteEqual } = checkUpsert(collection, docs, options, this.ctx.maxDocumentBytes)
    const merged = coalesce(inputs, mode)
    const counters = this.ctx.counters.get(collection) ?? new Set<string>()
    const needsRead =
      mode === 'replace' || (counters.size > 0 && [...merged.values()].some((f) => hasCounter(f, counters)))
    const current = needsRead ? await this.readMany(collection, [...merged.keys()]) : new Map<string, Document>()
    const changed = new Set<string>()

    // Registers: one INSERT per chunk; DO UPDATE_LOCAL_DIFF writes (and reports) only fields that
    // differ, DO UPDATE every given field (rewriteEqual).
    const onConflict = rewriteEqual ? 'DO UPDATE' : 'DO UPDATE_LOCAL_DIFF'
    const entries = [...merged.entries()]
    for (let i = 0; i < entries.length; i += CHUNK) {
      const chunk = entries.slice(i, i + CHUNK)
      const objectFields = new Set<string>()
      const args: Record<string, JsonValue> = {}
      const values = chunk.map(([id, fields], j) => {
        const doc: JsonObject = { _id: id }
        for (const [k, v] of Object.entries(fields)) {
          if (counters.has(k) && Number.isSafeInteger(v)) continue
          if (v !== null && typeof v === 'object' && !Array.isArray(v)) objectFields.add(k)
          doc[k] = v
        }
        args[`d${j}`] = doc
        return `(:d${j})`
      })
      // Objects are declared registers: the port replaces a nested object as a whole.
      const types =
        objectFields.size === 0 ? '' : ` (${[...objectFields].map((f) => `${ident(f)} REGISTER`).join(', ')})`
      const target = types ? `COLLECTION ${ident(collection)}${types}` : ident(collection)
      const res = await this.executor.execute(
        `INSERT INTO ${target} DOCUMENTS ${values.join(', ')} ON ID CONFLICT ${onConflict}`,
        args,
      )
      for (const id of res.mutatedDocumentIDsV2()) changed.add(String(id))
    }

    // Counter fields: setting one restarts the counter at that value (last write wins, increments then add to it).
    for (const [id, fields] of merged) {
      const before = current.get(id)
      const restarts = Object.entries(fields).filter(
        ([k, v]) => counters.has(k) && Number.isSafeInteger(v) && before?.[k] !== v,
      )
      if (restarts.length === 0) continue
      const args: Record<string, JsonValue> = { id }
      const types = restarts.map(([k]) => `${ident(k)} COUNTER`).join(', ')
      const applies = restarts.map(([k, v], j) => {
        args[`v${j}`] = v
        return `${ident(k)} RESTART WITH :v${j}`
      })
      await this.executor.execute(
        `UPDATE COLLECTION ${ident(collection)} (${types}) APPLY ${applies.join(', ')} WHERE _id = :id`,
        args,
      )
      changed.add(id)
    }

    if (mode === 'replace') {
      for (const [id, fields] of merged) {
        const before = current.get(id)
        if (!before) continue
        const extra = Object.keys(before).filter((k) => k !== '_id' && !(k in fields))
        if (extra.length > 0 && (await this.unset(collection, id, extra))) changed.add(id)
      }
    }

    const result: WriteResult = { changed: [], unchanged: [] }
    for (const { id } of inputs) (changed.has(id) ? result.changed : result.unchanged).push(id)
    for (const id of changed) this.notes.changes.push({ collection, id, removed: false })
    return result
  }

  async remove(collection: string, ids: readonly DocIdInput[]): Promise<WriteResult> {
    assertCollection(collection)
    if (!Array.isArray(ids)) throw new ValidationError(ErrorCode.INVALID_ID, 'remove expects an array of ids.')
    const normalised = ids.map(normaliseId)
    const verb = this.ctx.removeWith === 'evict' ? 'EVICT FROM' : 'DELETE FROM'
    const removed = new Set<string>()
    const unique = [...new Set(normalised)]
    for (let i = 0; i < unique.length; i += CHUNK) {
      const res = await this.executor.execute(`${verb} ${ident(collection)} WHERE _id IN :ids`, {
        ids: unique.slice(i, i + CHUNK),
      })
      for (const id of res.mutatedDocumentIDsV2()) removed.add(String(id))
    }
    const result: WriteResult = { changed: [], unchanged: [] }
    for (const id of normalised) (removed.has(id) ? result.changed : result.unchanged).push(id)
    for (const id of removed) this.notes.changes.push({ collection, id, removed: true })
    return result
  }

  /**
   * Ditto `COUNTER` fields: `APPLY f INCREMENT BY n`. A field holds integers.
   * A field can carry a register and a counter at once and shows the one
   * written last; when the counter shown after the increment is not the
   * previous value plus `by` (the field was last set as a register), the
   * counter is restarted at that sum, so the result is always what the
   * caller saw plus `by`.
   */
  async increment(collection: string, idInput: DocIdInput, field: string, by: number): Promise<number> {
    assertCollection(collection)
    const id = normaliseId(idInput)
    assertFieldName(field)
    if (typeof by !== 'number' || !Number.isFinite(by)) {
      throw new ValidationError(ErrorCode.INVALID_OPTIONS, `increment needs a finite number, got ${String(by)}.`, {
        details: { collection, id, field },
      })
    }
    if (!Number.isSafeInteger(by)) {
      throw new ValidationError(
        ErrorCode.INVALID_OPTIONS,
        `increment by ${by}: Ditto counters hold integers; increment by a whole number (scale the unit, e.g. cents).`,
        { details: { collection, id, field } },
      )
    }
    const doc = await this.get(collection, id)
    const current = doc?.[field]
    if (current !== undefined && !(typeof current === 'number' && Number.isSafeInteger(current))) {
      const what = typeof current === 'number' ? `the non-integer ${current}` : `a ${describe(current)}`
      throw new MeshmirrorError(
        ErrorCode.TYPE_MISMATCH,
        `Cannot increment ${collection}/${id}.${field}: it holds ${what}, not an integer (Ditto counters hold integers). Set it to an integer first.`,
        { details: { collection, id, field } },
      )
    }
    const expected = ((current as number | undefined) ?? 0) + by
    if (!doc)
      await this.executor.execute(`INSERT INTO ${ident(collection)} DOCUMENTS (:d) ON ID CONFLICT DO NOTHING`, {
        d: { _id: id },
      })
    const typed = `UPDATE COLLECTION ${ident(collection)} (${ident(field)} COUNTER) APPLY ${ident(field)}`
    await this.executor.execute(`${typed} INCREMENT BY :by WHERE _id = :id`, { id, by })
    const after = (await this.get(collection, id))?.[field]
    if (after !== expected) await this.executor.execute(`${typed} RESTART WITH :v WHERE _id = :id`, { id, v: expected })
    this.notes.changes.push({ collection, id, removed: false })
    this.notes.counterFields.push({ collection, field })
    return expected
  }

  async get(collection: string, idInput: DocIdInput): Promise<Document | undefined> {
    assertCollection(collection)
    const id = normaliseId(idInput)
    const res = await this.executor.execute(`SELECT * FROM ${ident(collection)} WHERE _id = :id`, { id })
    const item = res.items[0]
    return item ? fromDitto(item.value) : undefined
  }

  async find(query: Query): Promise<Document[]> {
    const compiled = compileQuery(query)
    const { text, args } = selectScope(compiled)
    const res = await this.executor.execute(text, args)
    return applyQueryInMemory(
      compiled,
      res.items.map((i) => fromDitto(i.value)),
    )
  }

  /** Current documents by id. */
  async readMany(collection: string, ids: readonly string[]): Promise<Map<string, Document>> {
    const out = new Map<string, Document>()
    for (let i = 0; i < ids.length; i += CHUNK) {
      const res = await this.executor.execute(`SELECT * FROM ${ident(collection)} WHERE _id IN :ids`, {
        ids: ids.slice(i, i + CHUNK),
      })
      for (const item of res.items) {
        const doc = fromDitto(item.value)
        out.set(doc._id, doc)
      }
    }
    return out
  }

  /** Removes fields until none shows (each UNSET removes the type written last). True if any was present. */
  private async unset(collection: string, id: string, fields: string[]): Promise<boolean> {
    let remaining = fields
    for (let round = 0; round < MAX_UNSET_ROUNDS && remaining.length > 0; round++) {
      await this.executor.execute(
        `UPDATE ${ident(collection)} UNSET ${remaining.map(ident).join(', ')} WHERE _id = :id`,
        {
          id,
        },
      )
      const doc = await this.get(collection, id)
      remaining = remaining.filter((f) => doc?.[f] !== undefined)
    }
    if (remaining.length > 0) {
      throw new MeshmirrorError(
        ErrorCode.BACKEND_ERROR,
        `Ditto kept fields ${remaining.join(', ')} of ${collection}/${id} after ${MAX_UNSET_ROUNDS} UNSETs.`,
        { details: { collection, id, fields: remaining } },
      )
    }
    return true
  }
}

function checkUpsert(
  collection: string,
  docs: readonly DocumentInput[],
  options: UpsertOptions,
  maxBytes: number,
): { inputs: { id: string; fields: JsonObject }[]; mode: 'merge' | 'replace'; rewriteEqual: boolean } {
  assertCollection(collection)
  if (!Array.isArray(docs))
    throw new ValidationError(ErrorCode.INVALID_DOCUMENT, 'upsert expects an array of documents.')
  const { mode, rewriteEqual } = checkUpsertOptions(options)
  const inputs = docs.map((d, i) => normaliseDocument(d, `document #${i}`))
  for (const { id, fields } of inputs) assertSize(JSON.stringify({ _id: id, ...fields }), maxBytes, collection, id)
  return { inputs, mode, rewriteEqual }
}

/** One entry per id: merge overlays later fields on earlier ones, replace keeps the last. */
function coalesce(inputs: { id: string; fields: JsonObject }[], mode: 'merge' | 'replace'): Map<string, JsonObject> {
  const out = new Map<string, JsonObject>()
  for (const { id, fields } of inputs) {
    const prev = out.get(id)
    out.set(id, prev && mode === 'merge' ? { ...prev, ...fields } : fields)
  }
  return out
}

function hasCounter(fields: JsonObject, counters: Set<string>): boolean {
  for (const k of Object.keys(fields)) if (counters.has(k)) return true
  return false
}

function describe(v: JsonValue | undefined): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'array'
  return typeof v === 'object' ? 'object' : typeof v
}
