/* What a verification against the mesh reports (see `verifyAgainstMesh`). */

/** How a document's exchanged state disagrees with the mesh. */
export type DriftKind =
  /** The mesh holds other content than the device last exchanged: a change was read and not written. */
  | 'stale'
  /** The document is in the device's scope and was never applied (nor parked, refused or filtered). */
  | 'missing'
  /** The mesh removed the document; the device still holds it. */
  | 'removed'

/** One document found out of step with the mesh. */
export interface DriftedDocument {
  model: string
  id: string
  kind: DriftKind
  /** The exchanged state's hash in the database (undefined when it has none). */
  storedHash: string | undefined
  /** The mesh content's hash (undefined when the mesh has no such document). */
  meshHash: string | undefined
  /** True when the in-memory copy of the exchanged state disagreed with the database's. */
  cacheDisagreed: boolean
}

/** What one verification found. */
export interface VerifyReport {
  /** Documents compared, over the models checked. */
  checked: number
  /** Documents out of step with the mesh after a second look. */
  drifted: DriftedDocument[]
  /** Whether the drifted documents were handed back to be applied from the mesh. */
  repaired: boolean
  durationMs: number
}

export interface VerifyOptions {
  /** Apply the drifted documents again from the mesh. Default true. */
  repair?: boolean
  /** Only this model. */
  model?: string
}
