import type { JsonValue } from './document.js'

/** Who last wrote one field of a document, and when. */
export interface FieldWrite {
  field: string
  /** The value the document holds for it (absent when the last write removed the field). */
  value?: JsonValue
  /** The site (device) whose write the value is. */
  site: string
  /** That write's clock: the later clock wins a merge. */
  clock: string
  /** When it was written, by the writer's clock (ISO 8601). */
  writtenAt: string
  /**
   * For a counter field: each site's increments on top of the value set by
   * the write above, as that site last wrote them.
   */
  increments?: { site: string; total: number; clock: string; writtenAt: string }[]
}

/**
 * Why a document holds what it holds: for each field, the write whose value
 * won, with its device and clock (see {@link MeshStore.fieldHistory}).
 */
export interface FieldHistory {
  collection: string
  id: string
  /** False when the document is removed (a tombstone): `fields` then lists what the removal left. */
  live: boolean
  /** The document's latest write of any kind. */
  written: { site: string; clock: string; writtenAt: string }
  /** The write that created the document (or re-created it after a removal). */
  created: { site: string; clock: string; writtenAt: string }
  /** The latest removal, when it was removed at least once. */
  removed?: { site: string; clock: string; writtenAt: string }
  fields: FieldWrite[]
  /** Per origin site, the sequence of that site's latest write to this document seen here. */
  versions: Record<string, number>
}
