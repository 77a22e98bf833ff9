import { ErrorCode, hasCode } from '../errors.js'
import { openEngineInstance } from '../instance/instance.js'
import type { MeshEngine } from '../instance/mesh-engine.js'
import type { EngineInstance, EngineInstanceOptions, InstanceHealth } from '../instance/types.js'
import { describeDittoStore, isDittoDir } from './describe-store.js'
import { openDittoStore } from './open-store.js'
import { checkDittoOptions, type DittoMeshOptions } from './options.js'
import type { DittoMesh, DittoPresence } from './types.js'

/** The instance manager's health, with Ditto's sync state and peers (absent once the store is closed). */
export interface DittoInstanceHealth extends InstanceHealth {
  presence?: DittoPresence
}

/** A Ditto mesh opened through the instance manager; `health()` reports presence. */
export interface DittoMeshInstance extends EngineInstance<DittoMesh> {
  health(): Promise<DittoInstanceHealth>
}

/**
 * The Ditto backend as an engine of the instance manager: use it with
 * `openMeshInstance({ dir, engine: dittoEngine(options) })`, or through
 * {@link openDittoMesh}. Migration from other directories is not offered.
 */
export function dittoEngine(options: Omit<DittoMeshOptions, 'signal'> = {}): MeshEngine<DittoMesh> {
  checkDittoOptions(options)
  return {
    name: 'ditto',
    open: (dir, { logger }) => openDittoStore({ ...options, dir, logger: options.logger ?? logger }),
    isMeshDir: isDittoDir,
    describeStore: describeDittoStore,
  }
}

/** Options of {@link openDittoMesh}: the store's and the instance manager's. */
export type OpenDittoMeshOptions = DittoMeshOptions &
  Omit<EngineInstanceOptions<DittoMesh>, 'engine' | 'migrateFrom' | 'onMigrationProgress'>

/**
 * Opens (or joins) the Ditto mesh of a directory through the instance
 * manager: the directory is made absolute and locked (`meshmirror.lock`),
 * a second open in this process (hot reload) returns another handle on the
 * same store, and a directory held by another process is waited for
 * asynchronously, then refused with `LOCK_HELD` naming its pid (a plain
 * Ditto process holding `__ditto_lock_file` included). The last handle's
 * `close()` closes Ditto.
 *
 * @example
 * ```ts
 * import { openDittoMesh } from 'meshmirror/ditto'
 * await using pos = await openDittoMesh({ dir: './pos-ditto', handleSignals: true })
 * await pos.store.upsert('counters', [{ _id: 'c1', curRcptNo: 8 }])
 * ```
 */
export async function openDittoMesh(options: OpenDittoMeshOptions): Promise<DittoMeshInstance> {
  checkDittoOptions(options)
  const { dir, strategy, onLocked, lockTimeoutMs, lock, cleanup, healthIntervalMs, handleSignals, signal, logger } =
    options
  const instance = await openEngineInstance<DittoMesh>({
    dir,
    engine: {
      ...dittoEngine(),
      // The wait for Ditto's own lock uses this open's timeout and abort signal.
      open: (d, ctx) =>
        openDittoStore({
          ...options,
          dir: d,
          logger: logger ?? ctx.logger,
          ...(onLocked === 'fail' ? { lockTimeoutMs: 0 } : {}),
        }),
    },
    ...(strategy ? { strategy } : {}),
    ...(onLocked ? { onLocked } : {}),
    ...(lockTimeoutMs !== undefined ? { lockTimeoutMs } : {}),
    ...(lock ? { lock } : {}),
    ...(cleanup !== undefined ? { cleanup } : {}),
    ...(healthIntervalMs !== undefined ? { healthIntervalMs } : {}),
    ...(handleSignals !== undefined ? { handleSignals } : {}),
    ...(signal ? { signal } : {}),
    ...(logger ? { logger } : {}),
  })
  return withPresence(instance)
}

/** The same handle, its `health()` adding the store's presence (sync running, license, peers). */
function withPresence(instance: EngineInstance<DittoMesh>): DittoMeshInstance {
  const health = async (): Promise<DittoInstanceHealth> => {
    const h: DittoInstanceHealth = await instance.health()
    if (!h.storeOpen) return h
    try {
      h.presence = instance.store.presence()
    } catch (error) {
      // Closed between the two reads: the report says the store is closed.
      if (!hasCode(error, ErrorCode.STORE_CLOSED)) throw error
      h.storeOpen = false
    }
    return h
  }
  return Object.create(instance, { health: { value: health, enumerable: true } }) as DittoMeshInstance
}
