import type { Ditto } from '@dittolive/ditto'
import type { DocIdInput } from '../mesh/document.js'
import type { MeshStore, MeshStoreStats, WriteResult } from '../mesh/mesh-store.js'
import type { Scope } from '../mesh/query.js'

/** A peer Ditto currently sees. */
export interface DittoPeer {
  peerKey: string
  deviceName: string
}

/** Sync state and peers, for health reports. */
export interface DittoPresence {
  syncActive: boolean
  /** True when an offline license token was accepted (sync can start). */
  licensed: boolean
  peers: DittoPeer[]
}

/** {@link MeshStoreStats} plus sync figures. */
export interface DittoMeshStats extends MeshStoreStats {
  /** Remote peers in the presence graph. */
  peers: number
  /** 1 while sync runs, else 0. */
  syncActive: number
}

/**
 * The mesh port on the Ditto SDK. Everything {@link MeshStore} promises,
 * with the deviations listed in `docs/ditto.md` (integer counters; change
 * history from a sidecar change log), plus Ditto's sync controls.
 *
 * @example
 * ```ts
 * await using pos = await openDittoMesh({ dir: './pos-ditto', databaseId })
 * await pos.store.upsert('orders', [{ _id: 'o1', total: 5 }])
 * await pos.store.increment('stock', 'tea', 'qty', -1)
 * console.log(pos.store.presence().peers)
 * ```
 */
export interface DittoMesh extends MeshStore {
  /** The absolute persistence directory. */
  readonly dir: string
  /** The underlying Ditto instance, for what the port does not cover. Do not close it directly. */
  readonly ditto: Ditto
  /** Removes documents from this device only: no tombstone; they return if a synced peer still has them. */
  evict(collection: string, ids: readonly DocIdInput[]): Promise<WriteResult>
  /**
   * Asks peers for the documents of a scope (a Ditto sync subscription).
   * Every `observe()` subscribes to its own query already. Returns the cancel function.
   */
  subscribe(scope: Scope): () => void
  /** Starts sync (`LICENSE_REQUIRED` without a license token). While it runs, the process stays alive. */
  startSync(): void
  stopSync(): void
  presence(): DittoPresence
  stats(): Promise<DittoMeshStats>
}
