import { ErrorCode, ValidationError } from '../errors.js'
import type { ConflictRecord } from '../mesh/conflict.js'
import type { DocIdInput, Document, DocumentInput, JsonObject } from '../mesh/document.js'
import type { UpsertOptions, WriteResult } from '../mesh/mesh-store.js'
import {
  assertCollection,
  assertFieldName,
  assertSize,
  checkUpsertOptions,
  normaliseDocument,
  normaliseId,
} from '../mesh/validate.js'
import { addCollision, hasCollision } from './collisions.js'
import { createCollision, updateConflicts } from './conflict-detect.js'
import {
  applyIncrement,
  applyRemove,
  applyUpsert,
  type DocState,
  decodeState,
  encodeState,
  mergeStates,
  statesEqual,
  type WriteStamp,
} from './doc-state.js'
import { maxClock } from './hlc.js'
import type { CommitEntry } from './observers.js'
import { RECENT_ROWS, type RecentRow } from './recent-changes.js'
import { checkRemoteChange } from './remote-change.js'
import { type DocRow, INSERT_ROWS, parseDoc, type StoreCore } from './store-core.js'
import type { ApplyRemoteOptions, ApplyRemoteResult, DocMeta, RemoteChange, VersionVector } from './types.js'
import { maxInto } from './version-vector.js'

/**
 * The writes of one SQLite transaction on the writer connection. Every
 * operation is atomic on its own (a savepoint when nested in a larger
 * transaction), so a rejected batch writes nothing even if the caller goes on.
 */
export class WriteSession {
  readonly entries: CommitEntry[] = []
  /** Conflicts recorded for the first time by this session, to announce after commit. */
  readonly conflicts: ConflictRecord[] = []
  private readonly vvUpdates: VersionVector = {}
  private ownSeq = 0
  private depth = 0
  private remoteApplied = 0
  /** The rows this session wrote, in order, while few enough to keep (see `RecentChanges`). */
  private readonly rows: RecentRow[] = []
  private rowsOverflow = false
  /**
   * Entry-wise maximum of the version vectors of every row the session wrote
   * (of rows rolled back too: it may only be larger than needed).
   */
  readonly rowVersions: VersionVector = Object.create(null)
  /** Text of the rows the session wrote, in UTF-16 units (rows rolled back too): about what its commit adds to the WAL. */
  bytesWritten = 0

  constructor(
    private readonly core: StoreCore,
    private readonly nested: boolean,
  ) {}

  upsert(collection: string, docs: readonly DocumentInput[], options: UpsertOptions = {}): WriteResult {
    assertCollection(collection)
    if (!Array.isArray(docs))
      throw new ValidationError(ErrorCode.INVALID_DOCUMENT, 'upsert expects an array of documents.')
    const { mode, rewriteEqual } = checkUpsertOptions(options)
    // Validate the whole batch before writing any of it.
    const inputs = docs.map((d, i) => normaliseDocument(d, `document #${i}`))
    return this.atomically(() => {
      const result: WriteResult = { changed: [], unchanged: [] }
      const rows = this.readRows(collection, inputs)
      for (const { id, fields } of inputs) {
        const row = rows.get(id)
        if (!row) {
          rows.set(id, this.writeNew(collection, id, fields))
          result.changed.push(id)
          continue
        }
        const before = parseDoc(row.doc)
        const prev = decodeState(before, JSON.parse(row.meta) as DocMeta)
        const stamp = this.stampAfter(prev)
        const track = this.core.recordConflicts.has(collection)
        const next = applyUpsert(prev, fields, mode === 'replace', stamp, rewriteEqual, track)
        if (next) {
          // A later document of the batch with the same id builds on this one.
          rows.set(id, this.write(collection, id, row, next, stamp.seq, true, before))
          result.changed.push(id)
        } else {
          result.unchanged.push(id)
        }
      }
      return result
    })
  }

  remove(collection: string, ids: readonly DocIdInput[]): WriteResult {
    assertCollection(collection)
    if (!Array.isArray(ids)) throw new ValidationError(ErrorCode.INVALID_ID, 'remove expects an array of ids.')
    const normalised = ids.map(normaliseId)
    return this.atomically(() => {
      const result: WriteResult = { changed: [], unchanged: [] }
      for (const id of normalised) {
        const row = this.core.w.getRow.get(collection, id)
        const prev = row ? decodeRow(row) : undefined
        const stamp = this.stampAfter(prev)
        const next = applyRemove(prev, stamp)
        if (next) {
          this.write(collection, id, row, next, stamp.seq, true)
          result.changed.push(id)
        } else {
          result.unchanged.push(id)
        }
      }
      return result
    })
  }

  increment(collection: string, idInput: DocIdInput, field: string, by: number): number {
    assertCollection(collection)
    const id = normaliseId(idInput)
    assertFieldName(field)
    if (typeof by !== 'number' || !Number.isFinite(by)) {
      throw new ValidationError(ErrorCode.INVALID_OPTIONS, `increment needs a finite number, got ${String(by)}.`, {
        details: { collection, id, field },
      })
    }
    return this.atomically(() => {
      const row = this.core.w.getRow.get(collection, id)
      const prev = row ? decodeRow(row) : undefined
      const stamp = this.stampAfter(prev)
      const { state, value } = applyIncrement(prev, field, by, stamp, { collection, id })
      this.write(collection, id, row, state, stamp.seq, true)
      return value
    })
  }

  /** Merges received changes. Validates all of them before writing any. */
  applyRemote(
    changes: readonly RemoteChange[],
    options: ApplyRemoteOptions = {},
    docJson?: readonly (string | undefined)[],
  ): ApplyRemoteResult {
    if (!Array.isArray(changes)) throw new ValidationError(ErrorCode.INVALID_CHANGE, 'applyRemote expects an array.')
    // The documents' JSON, as measured by the size check: a new document is stored as received.
    const texts = changes.map((c, k) => checkRemoteChange(c, this.core.maxDocumentBytes, docJson?.[k]))
    assertApplyOptions(options)
    return this.atomically(() => {
      const after = this.core.seq
      const result: ApplyRemoteResult = { applied: 0, unchanged: 0, asReceived: 0, sequences: { after, upTo: after } }
      // Once per call, not per document: a device whose clock runs ahead sends nothing else.
      let drifted: RemoteChange | undefined
      let driftedCount = 0
      // A plain creation (see isPlainCreation) is inserted unless its document exists: in a catch-up most
      // received documents are new here, and reading them first would find nothing.
      const plain = changes.map((c, k) => texts[k] !== null && isPlainCreation(c))
      const rows = this.readRemoteRows(changes.filter((_, k) => !plain[k]))
      // Plain creations in a row, of documents not written before in this call, are inserted together.
      const run: number[] = []
      const insertRun = () => {
        if (run.length === 0) return
        this.putPlainCreations(changes, texts, run, rows, result)
        run.length = 0
      }
      for (let k = 0; k < changes.length; k++) {
        const c = changes[k]!
        let beyond = false
        for (const clock of c.meta.t) if (!this.core.clock.observe(clock)) beyond = true
        if (beyond) {
          drifted ??= c
          driftedCount++
        }
        if (plain[k] && rows.get(c.collection)?.get(c.id) === undefined) {
          run.push(k)
          continue
        }
        insertRun()
        this.applyChange(c, texts[k]!, plain[k]!, rows, result)
      }
      insertRun()
      if (drifted)
        this.core.logger.warn('remote clocks beyond the drift bound', {
          changes: driftedCount,
          collection: drifted.collection,
          id: drifted.id,
        })
      if (options.from !== undefined && options.cursor !== undefined)
        this.core.w.putPeer.run(options.from, options.cursor)
      const vv = options.versionVector
      if (vv !== undefined) {
        for (const site of Object.keys(vv)) {
          const seq = vv[site]!
          if (seq > (this.core.vv[site] ?? 0) && seq > (this.vvUpdates[site] ?? 0)) this.vvUpdates[site] = seq
        }
      }
      this.remoteApplied += result.applied
      result.sequences.upTo = this.core.seq
      return result
    })
  }

  /** Merges one checked change into the store (a plain creation of a document not held is stored as received). */
  private applyChange(
    c: RemoteChange,
    docJson: string | null,
    plain: boolean,
    rows: Map<string, Map<string, DocRow>>,
    result: ApplyRemoteResult,
  ): void {
    const stored = rows.get(c.collection)
    let row = stored?.get(c.id)
    if (row === undefined && plain && docJson) {
      // Most of a catch-up: a document new here, created once and never changed since.
      const written = this.putPlainCreation(c, docJson)
      if (written) {
        if (stored) stored.set(c.id, written)
        else rows.set(c.collection, new Map([[c.id, written]]))
        result.applied++
        result.asReceived++
        return
      }
      // Held already: merged as any other change.
      row = this.core.w.getRow.get(c.collection, c.id)
    }
    const incoming = decodeState(c.doc, c.meta)
    const before = row ? parseDoc(row.doc) : null
    const prev = row ? decodeState(before, JSON.parse(row.meta) as DocMeta) : undefined
    const merged = mergeStates(prev ?? incoming, incoming)
    const collision = prev && createCollision(c.id, prev, incoming)
    if (collision) merged.collisions = addCollision(merged.collisions, collision)
    if (prev && statesEqual(prev, merged)) {
      result.unchanged++
      return
    }
    this.recordConflicts(c.collection, c.id, prev, incoming, merged, collision !== undefined)
    // A peer may know writes of ours we lost (a directory restored from a
    // backup): never reuse their sequence numbers.
    const known = merged.versions[this.core.site]
    if (known !== undefined && known > this.core.seq) this.core.seq = known
    const written = this.write(c.collection, c.id, row, merged, ++this.core.seq, false, before)
    // A later change of the chunk to the same document merges into this one.
    if (stored) stored.set(c.id, written)
    else rows.set(c.collection, new Map([[c.id, written]]))
    result.applied++
    if (statesEqual(merged, incoming)) result.asReceived++
  }

  /**
   * Applies plain creations (`ks`, indexes into `changes`) of documents this
   * call has not written: as `applyChange` would one by one, with up to 64
   * rows a statement. A statement that skipped a row (a document held
   * already, or twice among them) is taken back and its changes applied one
   * by one, so sequence numbers are used as they would be.
   */
  private putPlainCreations(
    changes: readonly RemoteChange[],
    texts: readonly (string | null)[],
    ks: readonly number[],
    rows: Map<string, Map<string, DocRow>>,
    result: ApplyRemoteResult,
  ): void {
    const w = this.core.w
    let i = 0
    for (const size of INSERT_ROWS) {
      const insert = w.insertRows.get(size)!
      for (; ks.length - i >= size; i += size) {
        let seq = this.core.seq
        const args: unknown[] = new Array(size * 5)
        const metas: string[] = new Array(size)
        for (let j = 0; j < size; j++) {
          const c = changes[ks[i + j]!]!
          const v = c.meta.v
          // As putPlainCreation: never reuse a sequence number a peer knows of ours.
          const known = v[this.core.site]
          if (known !== undefined && known > seq) seq = known
          seq++
          const meta = plainMeta(c)
          metas[j] = meta
          const a = j * 5
          args[a] = seq
          args[a + 1] = c.collection
          args[a + 2] = c.id
          args[a + 3] = texts[ks[i + j]!]
          args[a + 4] = meta
        }
        w.insertMark.run()
        if (insert.run(args).changes !== size) {
          w.insertUndo.run()
          w.insertKeep.run()
          for (let j = 0; j < size; j++) {
            const k = ks[i + j]!
            this.applyChange(changes[k]!, texts[k]!, true, rows, result)
          }
          continue
        }
        w.insertKeep.run()
        this.core.seq = seq
        for (let j = 0; j < size; j++) {
          const k = ks[i + j]!
          const c = changes[k]!
          const docJson = texts[k]!
          const meta = metas[j]!
          this.stored(c, docJson, meta, args[j * 5] as number, rows)
          result.applied++
          result.asReceived++
        }
      }
    }
    for (; i < ks.length; i++) this.applyChange(changes[ks[i]!]!, texts[ks[i]!]!, true, rows, result)
  }

  /** Records a plain creation just inserted (see `putPlainCreation`). */
  private stored(
    c: RemoteChange,
    docJson: string,
    meta: string,
    seq: number,
    rows: Map<string, Map<string, DocRow>>,
  ): void {
    this.bytesWritten += docJson.length + meta.length
    maxInto(this.rowVersions, c.meta.v)
    if (this.core.observers.watches(c.collection)) {
      this.entries.push({ collection: c.collection, id: c.id, before: null, after: c.doc as Document })
    }
    const written = { seq, doc: docJson, meta }
    const stored = rows.get(c.collection)
    if (stored) stored.set(c.id, written)
    else rows.set(c.collection, new Map([[c.id, written]]))
  }

  /**
   * Stores a received document whose every field was written at its one
   * clock (see `isPlainCreation`), unless this store holds the document
   * (then returns undefined and writes nothing): the merge of such a state
   * with nothing is the state itself, and it is stored as `writeNew` stores
   * a local creation, from the received JSON.
   */
  private putPlainCreation(c: RemoteChange, docJson: string): DocRow | undefined {
    const v = c.meta.v
    // A peer may know writes of ours we lost (a directory restored from a
    // backup): never reuse their sequence numbers.
    const known = v[this.core.site]
    if (known !== undefined && known > this.core.seq) this.core.seq = known
    const seq = this.core.seq + 1
    const meta = plainMeta(c)
    if (this.core.w.insertRow.run(seq, c.collection, c.id, docJson, meta).changes === 0) return undefined
    this.bytesWritten += docJson.length + meta.length
    this.core.seq = seq
    maxInto(this.rowVersions, v)
    if (this.core.observers.watches(c.collection)) {
      this.entries.push({ collection: c.collection, id: c.id, before: null, after: c.doc as Document })
    }
    return { seq, doc: docJson, meta }
  }

  /**
   * Records what the merge of `incoming` into `prev` made lose: the
   * collisions `merged` holds that `prev` did not (found here, or found by
   * another replica and received with the document), and, for collections
   * that ask for it, concurrent field updates.
   */
  private recordConflicts(
    collection: string,
    id: string,
    prev: DocState | undefined,
    incoming: DocState,
    merged: DocState,
    collided: boolean,
  ): void {
    const log = this.core.conflictLog
    const now = this.core.now()
    for (const x of merged.collisions ?? []) {
      if (hasCollision(prev?.collisions, x)) continue
      const winner = { clock: x.winner, content: x.winnerContent }
      const loser = { clock: x.loser, content: x.loserContent }
      const rec = log.record({ collection, id, kind: 'create', winner, loser }, now)
      if (rec) this.conflicts.push(rec)
    }
    // A collision found now is recorded whole: its fields are not listed again one by one.
    if (!prev || collided || !this.core.recordConflicts.has(collection)) return
    for (const u of updateConflicts(prev, incoming, merged)) {
      const rec = log.record({ collection, id, kind: 'update', ...u }, now)
      if (rec) this.conflicts.push(rec)
    }
  }

  /** Persists the clock and version vector; call just before COMMIT. */
  finish(): void {
    this.core.w.putClock.run(this.core.clock.last())
    if (this.ownSeq > 0) this.vvUpdates[this.core.site] = this.ownSeq
    for (const [site, seq] of Object.entries(this.vvUpdates)) this.core.w.putVersion.run(site, seq)
  }

  /** Makes the session's effects visible in memory; call right after COMMIT. */
  committed(): void {
    for (const [site, seq] of Object.entries(this.vvUpdates)) {
      if (seq > (this.core.vv[site] ?? 0)) this.core.vv[site] = seq
    }
    this.core.committedSeq = this.core.seq
    this.core.remoteApplied += this.remoteApplied
  }

  /**
   * Every row the session wrote, in sequence order, or undefined when it
   * wrote rows not listed: received changes (a plain creation is stored
   * without `put`) or more rows than are kept. `rowVersions` bounds them all.
   */
  writtenRows(): readonly RecentRow[] | undefined {
    return this.remoteApplied > 0 || this.rowsOverflow ? undefined : this.rows
  }

  /** The stored rows of a batch's documents, read in one query for large batches. */
  private readRows(collection: string, inputs: readonly { id: string }[]): Map<string, DocRow> {
    const rows = new Map<string, DocRow>()
    if (inputs.length < 16) {
      for (const { id } of inputs) {
        const row = this.core.w.getRow.get(collection, id)
        if (row) rows.set(id, row)
      }
      return rows
    }
    const ids = JSON.stringify(inputs.map((x) => x.id))
    for (const row of this.core.w.getRows.iterate(collection, ids)) rows.set(row.id, row)
    return rows
  }

  /** The stored rows of received changes, by collection: one query per collection instead of one per change. */
  private readRemoteRows(changes: readonly RemoteChange[]): Map<string, Map<string, DocRow>> {
    const ids = new Map<string, { id: string }[]>()
    for (const c of changes) {
      const list = ids.get(c.collection)
      if (list) list.push(c)
      else ids.set(c.collection, [c])
    }
    const out = new Map<string, Map<string, DocRow>>()
    for (const [collection, list] of ids) out.set(collection, this.readRows(collection, list))
    return out
  }

  private stamp(): WriteStamp {
    return { site: this.core.site, clock: this.core.clock.tick(), seq: this.core.seq + 1 }
  }

  /**
   * A stamp later than every write the document holds: a local write is made
   * after what it changes, so it wins over it even when that came from a
   * device whose clock runs ahead of ours (beyond the drift bound).
   */
  private stampAfter(prev: DocState | undefined): WriteStamp {
    if (prev) this.core.clock.follow(maxClock(prev.written, prev.removed) as string)
    return this.stamp()
  }

  private write(
    collection: string,
    id: string,
    row: DocRow | undefined,
    state: DocState,
    seq: number,
    own: boolean,
    before?: Document | null,
  ): DocRow {
    const { doc, meta } = encodeState(id, state)
    return this.put(collection, id, row, doc, JSON.stringify(meta), meta.v, seq, own, before)
  }

  /**
   * Writes a document that did not exist. Same result as `write` with the
   * state `applyUpsert` builds from nothing (every field set at one clock,
   * which the metadata leaves implied), without building that state.
   */
  private writeNew(collection: string, id: string, fields: JsonObject): DocRow {
    const stamp = this.stamp()
    const doc: Document = { _id: id }
    for (const key in fields) doc[key] = fields[key]!
    // Clocks and site ids are plain ASCII: no escaping needed.
    const meta = `{"t":["${stamp.clock}"],"i":0,"f":{},"v":{"${stamp.site}":${stamp.seq}}}`
    return this.put(collection, id, undefined, doc, meta, { [stamp.site]: stamp.seq }, stamp.seq, true)
  }

  private put(
    collection: string,
    id: string,
    row: DocRow | undefined,
    doc: Document | null,
    metaJson: string,
    versions: VersionVector,
    seq: number,
    own: boolean,
    before?: Document | null,
  ): DocRow {
    const docJson = doc === null ? null : JSON.stringify(doc)
    if (docJson !== null) assertSize(docJson, this.core.maxDocumentBytes, collection, id)
    this.core.w.putRow.run(seq, collection, id, docJson, metaJson)
    this.bytesWritten += (docJson?.length ?? 0) + metaJson.length
    this.core.seq = seq
    if (own) this.ownSeq = seq
    maxInto(this.rowVersions, versions)
    if (this.rows.length < RECENT_ROWS) this.rows.push({ seq, collection, id, doc: docJson, meta: metaJson, versions })
    else this.rowsOverflow = true
    if (this.core.observers.watches(collection)) {
      this.entries.push({
        collection,
        id,
        before: before !== undefined ? before : row ? parseDoc(row.doc) : null,
        after: doc,
      })
    }
    return { seq, doc: docJson, meta: metaJson }
  }

  /** Runs one operation so that it either fully applies or leaves no trace. */
  private atomically<T>(fn: () => T): T {
    if (!this.nested && this.depth === 0) {
      this.depth++
      try {
        return fn()
      } finally {
        this.depth--
      }
    }
    const db = this.core.writer
    const mark = {
      seq: this.core.seq,
      ownSeq: this.ownSeq,
      entries: this.entries.length,
      conflicts: this.conflicts.length,
      rows: this.rows.length,
      vv: { ...this.vvUpdates },
    }
    const remoteApplied = this.remoteApplied
    db.exec('SAVEPOINT op')
    this.depth++
    try {
      const out = fn()
      db.exec('RELEASE op')
      return out
    } catch (e) {
      db.exec('ROLLBACK TO op')
      db.exec('RELEASE op')
      this.core.seq = mark.seq
      this.ownSeq = mark.ownSeq
      this.entries.length = mark.entries
      this.rows.length = mark.rows
      this.conflicts.length = mark.conflicts
      for (const k of Object.keys(this.vvUpdates)) delete this.vvUpdates[k]
      Object.assign(this.vvUpdates, mark.vv)
      this.remoteApplied = remoteApplied
      throw e
    } finally {
      this.depth--
    }
  }
}

/**
 * True for a checked change that holds a live document whose every field was
 * written at one clock, the document's only one, with nothing else recorded:
 * what a document created once and never changed since looks like (the
 * form `encodeState` gives it, `_id` first).
 */
function isPlainCreation(c: RemoteChange): boolean {
  const m = c.meta
  if (m.i !== 0 || m.t.length !== 1 || c.doc === null) return false
  if (m.d !== undefined || m.c !== undefined || m.n !== undefined || m.p !== undefined) return false
  if (m.cx !== undefined || m.x !== undefined || m.h !== undefined) return false
  for (const _ in m.f) return false
  for (const key in c.doc) return key === '_id'
  return false
}

/** The stored metadata of a plain creation (see `isPlainCreation`): its one clock and its version vector. */
function plainMeta(c: RemoteChange): string {
  // `JSON.stringify`'s text: checked clocks and site ids are plain ASCII that needs no escaping, and the
  // vector's sequences safe integers.
  const v = c.meta.v
  let vv = ''
  for (const site of Object.keys(v)) vv += `${vv === '' ? '' : ','}"${site}":${v[site]}`
  return `{"t":["${c.meta.t[0]}"],"i":0,"f":{},"v":{${vv}}}`
}

function decodeRow(row: DocRow): DocState {
  return decodeState(parseDoc(row.doc) as JsonObject | null, JSON.parse(row.meta) as DocMeta)
}

const SITE_ID = /^[A-Za-z0-9_-]{1,64}$/

function assertApplyOptions(options: ApplyRemoteOptions): void {
  const bad = (what: string) => new ValidationError(ErrorCode.INVALID_OPTIONS, `applyRemote: ${what}.`)
  if (options.cursor !== undefined && (!Number.isSafeInteger(options.cursor) || options.cursor < 0)) {
    throw bad('cursor must be a non-negative integer')
  }
  if ((options.cursor === undefined) !== (options.from === undefined)) throw bad('from and cursor go together')
  if (options.from !== undefined && (typeof options.from !== 'string' || !SITE_ID.test(options.from))) {
    throw bad('from must be a site id')
  }
  const vv = options.versionVector
  if (vv !== undefined) {
    if (typeof vv !== 'object' || vv === null) throw bad('versionVector must be an object')
    for (const site of Object.keys(vv)) {
      const seq = vv[site]
      if (!SITE_ID.test(site) || !Number.isSafeInteger(seq) || (seq as number) < 0)
        throw bad('versionVector is malformed')
    }
  }
}
