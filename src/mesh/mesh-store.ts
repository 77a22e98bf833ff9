import type { ConflictQuery, ConflictRecord } from './conflict.js'
import type { DocIdInput, Document, DocumentInput } from './document.js'
import type { FieldHistory } from './field-history.js'
import type { Query, Scope } from './query.js'

/** How `upsert` treats fields the new document does not mention. */
export type UpsertMode = 'merge' | 'replace'

export interface UpsertOptions {
  /**
   * `merge` (default) keeps fields absent from the new document, like Ditto's
   * `ON ID CONFLICT DO UPDATE`. `replace` removes them.
   */
  mode?: UpsertMode
  /**
   * Write every given field even where it already holds that value, so the
   * write supersedes concurrent removals and older writes of those fields:
   * what a row created or saved whole means. Default false: a field equal
   * to its stored value is no change and has nothing to replicate.
   */
  rewriteEqual?: boolean
}

/** What a write changed. Ids are normalised strings, in input order. */
export interface WriteResult {
  /** Ids whose stored document changed. */
  changed: string[]
  /** Ids the write left as they were (same values, or already removed). */
  unchanged: string[]
}

/** A document that left an observed result. */
export interface RemovedDocument {
  _id: string
  /** The document as last seen in the result, when known. */
  previous?: Document
}

/** One delivery to an observer: what changed in its result since the last delivery. */
export interface ObserverChange {
  /** True for the first delivery made because of `{ initial: true }`. */
  initial: boolean
  /** Documents that entered the result. */
  inserted: Document[]
  /** Documents still in the result whose content changed. */
  updated: Document[]
  /** Documents that left the result (removed, or no longer matching). */
  removed: RemovedDocument[]
  /** Reads the whole current result of the query. */
  results(): Promise<Document[]>
}

/** Receives observer deliveries. A returned promise is awaited before the next delivery. */
export type ObserverListener = (change: ObserverChange) => void | Promise<void>

export interface ObserveOptions {
  /** Deliver the current result first, as `inserted` with `initial: true`. Default false. */
  initial?: boolean
  /** Called when the listener throws or rejects. The error is also counted and emitted by the store. */
  onError?: (error: unknown) => void
}

/** A live query. Cancel it to stop deliveries. */
export interface Observer {
  /** Resolves once the observer is registered (and its initial delivery, if asked for, was made). */
  readonly ready: Promise<void>
  /** Stops deliveries. Idempotent. */
  cancel(): void
  [Symbol.dispose](): void
}

/** A position in a store's change history. Opaque; persist it as a string. */
export type ChangeCursor = string

/** The answer of {@link MeshStore.changesSince}. */
export interface ChangeSet {
  /** Documents that changed after the cursor and match the scope, in change order. */
  changed: Document[]
  /** Ids (in the scope's collection) removed after the cursor. */
  removed: string[]
  /** Cursor to pass next time. */
  cursor: ChangeCursor
  /** True when `limit` cut the answer short; call again with `cursor`. */
  hasMore: boolean
}

export interface ChangesSinceOptions {
  /** Maximum number of changed plus removed entries in one answer. Default 10,000. */
  limit?: number
}

/** Writes (and reads) inside {@link MeshStore.transaction}. */
export interface MeshWriter {
  upsert(collection: string, docs: readonly DocumentInput[], options?: UpsertOptions): Promise<WriteResult>
  remove(collection: string, ids: readonly DocIdInput[]): Promise<WriteResult>
  increment(collection: string, id: DocIdInput, field: string, by: number): Promise<number>
  get(collection: string, id: DocIdInput): Promise<Document | undefined>
  find(query: Query): Promise<Document[]>
}

/** Counters every store keeps; backends may add their own. */
export interface MeshStoreStats {
  /** Documents in the store (not removed). */
  documents: number
  /** Removed documents kept as tombstones. */
  tombstones: number
  /** Live observers. */
  observers: number
  /** Observer listeners that threw or rejected. */
  observerErrors: number
  [name: string]: number
}

/** Events a store emits. */
export interface MeshStoreEvents {
  /** An observer listener failed. */
  'observer-error': { error: unknown; query: Query }
  /** A losing version was recorded (stores that implement {@link MeshStore.conflicts} only), after commit. */
  conflict: ConflictRecord
}

/**
 * The replicated document store the bridge mirrors into: the *mesh*.
 *
 * Implemented by the builtin engine (`openMesh`) and by the Ditto backend
 * (`meshmirror/ditto`). Every implementation passes
 * `runMeshStoreConformance` from `meshmirror/testing`.
 *
 * @example
 * ```ts
 * await using mesh = await openMesh({ dir: './pos-mesh' })
 * await mesh.upsert('counters', [{ _id: 'c1', branchId: 1, curRcptNo: 7 }])
 * await mesh.increment('stock', 'sku-9', 'qty', -1)
 * const open = await mesh.find({ collection: 'orders', filter: { status: 'open' }, orderBy: 'createdAt', limit: 50 })
 * const obs = mesh.observe({ collection: 'orders', filter: { branchId: 1 } }, (c) => apply(c.inserted, c.updated, c.removed))
 * ```
 */
export interface MeshStore extends MeshWriter, AsyncDisposable {
  /** This replica's site id (stable for the life of the persistence directory). */
  readonly siteId: string

  /**
   * Inserts or updates documents in one atomic batch. Every document needs
   * an `_id`. A rejected batch writes nothing. Writing a value equal to the
   * stored one is not a change (no clock bump, no observer delivery).
   */
  upsert(collection: string, docs: readonly DocumentInput[], options?: UpsertOptions): Promise<WriteResult>

  /** Removes documents, leaving tombstones that replicate. A later write re-creates the document. */
  remove(collection: string, ids: readonly DocIdInput[]): Promise<WriteResult>

  /**
   * Adds `by` to a counter field and returns its new value. Counters merge by
   * summing every site's increments: two sites each applying -1 to 10 give 8.
   * Setting the field with `upsert` resets the counter to that value.
   */
  increment(collection: string, id: DocIdInput, field: string, by: number): Promise<number>

  /** One document by id, or undefined. */
  get(collection: string, id: DocIdInput): Promise<Document | undefined>

  /** Documents matching a query. */
  find(query: Query): Promise<Document[]>

  /** Number of documents matching a scope. */
  count(scope: Scope): Promise<number>

  /** Indexes a (possibly dotted) field of a collection. Idempotent. */
  createIndex(collection: string, field: string): Promise<void>

  /**
   * A live query. Deliveries are diffs, made in commit order, one at a time:
   * changes committed while a delivery is in progress are coalesced into the
   * next one.
   */
  observe(query: Query, listener: ObserverListener, options?: ObserveOptions): Observer

  /**
   * What changed in a scope after `cursor` (or everything, for `null`), for
   * catching up after being away. Cursors survive restarts; a cursor from
   * another store (or a store re-created in the same directory) is refused
   * with `INVALID_CURSOR`, which means: start again from `null`.
   */
  changesSince(cursor: ChangeCursor | null, scope: Scope, options?: ChangesSinceOptions): Promise<ChangeSet>

  /** The cursor of the latest change, without reading any document. */
  currentCursor(): Promise<ChangeCursor>

  /**
   * Calls `listener` after each commit that changed the store (local or
   * received), with the commit's sequence; returns the unsubscribe function.
   * Optional: the builtin engine implements it, so a reader of the change
   * feed can wait for commits instead of polling; the Ditto backend does
   * not, as Ditto's sync writes inside its SDK.
   */
  onCommit?(listener: (sequence: number) => void): () => void

  /**
   * Runs `fn` atomically: all of its writes commit together, or none do (when
   * it throws). Observers see the writes once, after commit.
   */
  transaction<T>(fn: (tx: MeshWriter) => Promise<T>): Promise<T>

  /** Counters for diagnostics. */
  stats(): Promise<MeshStoreStats>

  /**
   * The versions that lost a merge and were kept: create/create collisions
   * always, concurrent field updates for collections that record them. The
   * latest first. Optional: the builtin engine implements it; the Ditto
   * backend does not, as Ditto merges inside its SDK and exposes no losing
   * version.
   *
   * @example
   * ```ts
   * for (const c of (await mesh.conflicts?.({ collection: 'orders' })) ?? []) {
   *   console.log(c.id, 'kept', c.winner.content, 'lost', c.loser.content)
   * }
   * ```
   */
  conflicts?(query?: ConflictQuery): Promise<ConflictRecord[]>

  /** How many conflicts {@link MeshStore.conflicts} would list without a limit. */
  conflictCount?(query?: Pick<ConflictQuery, 'collection'>): Promise<number>

  /**
   * For each field of a document, which device wrote the value it holds and
   * when (the write's clock); undefined when the store never held the
   * document. Optional: the builtin engine keeps a clock per field and
   * implements it; the Ditto backend does not, as Ditto keeps its merge
   * metadata inside its SDK.
   *
   * @example
   * ```ts
   * const h = await mesh.fieldHistory?.('counters', 'c1')
   * for (const f of h?.fields ?? []) console.log(f.field, '=', f.value, 'by', f.site, 'at', f.writtenAt)
   * ```
   */
  fieldHistory?(collection: string, id: DocIdInput): Promise<FieldHistory | undefined>

  /** Subscribes to an event; returns the unsubscribe function. */
  on<E extends keyof MeshStoreEvents>(event: E, listener: (payload: MeshStoreEvents[E]) => void): () => void

  /** Closes the store. Idempotent; pending writes finish first. */
  close(): Promise<void>
}
