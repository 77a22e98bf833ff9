import { ErrorCode, MeshmirrorError } from '../errors.js'
import type { Document, JsonValue } from '../mesh/document.js'
import type { Filter } from '../mesh/query.js'
import type { RepositoryTx, Row } from '../repository/repository.js'

/** Which way a model syncs. */
export const Direction = {
  /** Local writes go to the mesh; remote changes are never applied. */
  sendOnly: 'sendOnly',
  /** Remote changes are applied; local writes are not sent. */
  receiveOnly: 'receiveOnly',
  /** Both (the default). */
  bidirectional: 'bidirectional',
} as const

export type Direction = (typeof Direction)[keyof typeof Direction]

/**
 * Runtime values adapters build their scope from, such as the current branch.
 * Set with `coordinator.setContext`.
 */
export type SyncContext = Readonly<Record<string, JsonValue | undefined>>

/**
 * A relation followed by backup restore: documents of this model hold, in
 * `field`, keys of documents of `model`.
 */
export interface BackupLink {
  /** Field of this model's documents holding the related key (a value or an array of values). */
  field: string
  /** The related model (its adapter's `model`). */
  model: string
  /** Field of the related documents the key is matched against. Default `_id`. */
  remoteKey?: string
  /** Also follow the related model's own links. Default false. */
  cascade?: boolean
}

/**
 * How one model (a repository table) maps to one mesh collection. The
 * counterpart of the seed's `DittoSyncAdapter`, typed; the code generator
 * produces these from annotated models.
 *
 * Document ids are the record's primary key as a string: `documentId(record)`
 * must equal the `_id` of `toDocument(record)`.
 *
 * @example
 * ```ts
 * const counters: SyncAdapter = {
 *   model: 'counters',
 *   collection: 'counters',
 *   observerQuery: (ctx) => (ctx.branchId === undefined ? null : { branchId: ctx.branchId }),
 *   documentId: (row) => String(row.id),
 *   toDocument: (row) => ({ _id: String(row.id), branchId: row.branch_id, curRcptNo: row.cur_rcpt_no }),
 *   fromDocument: (doc) => {
 *     if (typeof doc.branchId !== 'number') rejectDocument('branchId is missing or not a number')
 *     return { id: doc._id, branch_id: doc.branchId, cur_rcpt_no: doc.curRcptNo ?? 0 }
 *   },
 * }
 * ```
 */
export interface SyncAdapter<R extends Row = Row> {
  /** The repository model (table) this adapter mirrors. One adapter per model. */
  readonly model: string
  /** The mesh collection it mirrors into. One adapter per collection. */
  readonly collection: string
  /** Default `bidirectional`. */
  readonly direction?: Direction
  /**
   * Apply what changed in the mesh while the app was away, at startup.
   * Default true. When false, only changes made from now on are applied.
   */
  readonly hydrateOnStartup?: boolean
  /** Backup restore: enabled (default true) and the links it follows. */
  readonly backup?: { readonly enabled?: boolean; readonly links?: readonly BackupLink[] }
  /**
   * Context values that take precedence over the coordinator's, for this
   * adapter only: the test hook of the seed's `overridableBranchId`.
   * See {@link withContext}.
   */
  readonly contextOverrides?: SyncContext
  /**
   * Document fields that merge as counters (stock levels and the like): a
   * local change of one is sent as an increment by the difference from the
   * value last exchanged, so decrements made on several devices at once all
   * count. A new document sets the field. Default none.
   */
  readonly counterFields?: readonly string[]

  /**
   * The mesh filter selecting the documents this device receives, built from
   * the context (e.g. `{ branchId: ctx.branchId }`); `{}` for all of them;
   * null (or no method) for a model that only sends.
   */
  observerQuery?(context: SyncContext): Filter | null
  /** The mesh document for a record. Include `_id`. */
  toDocument(record: R): Document
  /**
   * The record for a mesh document. Return null to skip the document; throw
   * (for instance with {@link rejectDocument}) when it is malformed: it is
   * then counted as rejected with the error's message, and the rest of the
   * batch still lands.
   */
  fromDocument(doc: Document): R | null
  /** The document id of a record: its primary key as a string. */
  documentId(record: R): string
  /**
   * Whether a remote document may be applied here. Default: it matches
   * `observerQuery(context)`. Documents outside the scope are never applied.
   */
  shouldApplyRemote?(doc: Document, context: SyncContext): boolean
  /**
   * Writes records received from the mesh. Default: `tx.upsert(model, records)`.
   * Return how many rows changed when known.
   */
  upsertToRepository?(tx: RepositoryTx, records: R[]): Promise<number | undefined>
  /** Deletes records removed in the mesh. Default: `tx.delete(model, ids)`. */
  deleteFromRepository?(tx: RepositoryTx, ids: string[]): Promise<number | undefined>
}

/**
 * Throws the error adapters use to refuse a malformed document (code
 * `DOCUMENT_REJECTED`); the coordinator counts it with `reason`.
 *
 * @example
 * ```ts
 * if (typeof doc.branchId !== 'number') rejectDocument('branchId is missing or not a number')
 * ```
 */
export function rejectDocument(reason: string, details: Record<string, unknown> = {}): never {
  throw new MeshmirrorError(ErrorCode.DOCUMENT_REJECTED, reason, { details: { reason, ...details } })
}

/**
 * The same adapter with some context values fixed, whatever the
 * coordinator's context says: for tests, or a model scoped differently from
 * the rest of the app.
 *
 * @example
 * ```ts
 * coordinator.register(withContext(countersAdapter, { branchId: 7 }))
 * ```
 */
export function withContext<R extends Row>(adapter: SyncAdapter<R>, overrides: SyncContext): SyncAdapter<R> {
  const merged = { ...adapter.contextOverrides, ...overrides }
  // Keep the prototype: generated adapters may be class instances.
  return Object.create(adapter, { contextOverrides: { value: merged, enumerable: true } }) as SyncAdapter<R>
}

/** The direction of an adapter, defaulted. */
export function directionOf(adapter: SyncAdapter): Direction {
  return adapter.direction ?? Direction.bidirectional
}

/** True when the adapter applies remote changes. */
export function receives(adapter: SyncAdapter): boolean {
  return directionOf(adapter) !== Direction.sendOnly && typeof adapter.observerQuery === 'function'
}

/** True when the adapter sends local changes. */
export function sends(adapter: SyncAdapter): boolean {
  return directionOf(adapter) !== Direction.receiveOnly
}
