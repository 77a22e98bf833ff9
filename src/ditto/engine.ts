import type { MeshEngine } from '../instance/engine.js'
import { type MeshInstance, type OpenInstanceOptions, openMeshInstance } from '../instance/instance.js'
import { isDittoDir, openDittoStore } from './open-store.js'
import { checkDittoOptions, type DittoMeshOptions } from './options.js'
import type { DittoMesh } from './types.js'

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
  }
}

/** Options of {@link openDittoMesh}: the store's and the instance manager's. */
export type OpenDittoMeshOptions = DittoMeshOptions &
  Omit<OpenInstanceOptions<DittoMesh>, 'engine' | 'migrateFrom' | 'onMigrationProgress'>

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
export function openDittoMesh(options: OpenDittoMeshOptions): Promise<MeshInstance<DittoMesh>> {
  checkDittoOptions(options)
  const { dir, strategy, onLocked, lockTimeoutMs, lock, cleanup, healthIntervalMs, handleSignals, signal, logger } =
    options
  return openMeshInstance<DittoMesh>({
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
}
