import type { JsonObject } from './document.js'

/** What a conflict is about: a document created twice, or a field written twice. */
export type ConflictKind = 'create' | 'update'

/** One of the two versions of a conflict. */
export interface ConflictVersion {
  /** The site (device) that wrote it. */
  site: string
  /** Its write's clock: the later clock wins. */
  clock: string
  /** When it was written, by the writer's clock (ISO 8601). */
  writtenAt: string
  /**
   * `create`: the document's fields (without `_id`) as that version had
   * them. `update`: the field with its value, or `{}` when the write
   * removed the field.
   */
  content: JsonObject
}

/**
 * A version that lost a merge and is kept so a person can repair the
 * document: the merge result stays as the mesh made it, everywhere.
 *
 * - `create`: a document created on two devices under one `_id` while
 *   neither had seen the other's (a create/create collision). The later
 *   creation won; its fields win where both wrote.
 * - `update`: one field written on two devices where neither write saw the
 *   other; the later write won (recorded only for collections that ask for
 *   it, see `recordConflicts`).
 */
export interface ConflictRecord {
  /** Position in this store's conflict list (ascending as they were recorded here). */
  seq: number
  collection: string
  /** The document's `_id`. */
  id: string
  kind: ConflictKind
  /** The field, for an `update` conflict. */
  field?: string
  /** The version the document holds. */
  winner: ConflictVersion
  /** The version that lost. */
  loser: ConflictVersion
  /** When this store recorded it (ISO 8601). */
  detectedAt: string
}

/** Which conflicts {@link MeshStore.conflicts} lists. */
export interface ConflictQuery {
  /** Only this collection's. */
  collection?: string
  /** At most this many, the latest first. Default 1,000. */
  limit?: number
}
