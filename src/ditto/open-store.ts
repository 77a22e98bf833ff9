import { mkdirSync } from 'node:fs'
import { resolve } from 'node:path'
import { ErrorCode, StorageError } from '../errors.js'
import { silentLogger } from '../logger.js'
import { ChangeLog } from './change-log.js'
import { DittoMeshStore } from './ditto-mesh.js'
import { openDitto } from './open-ditto.js'
import { checkDittoOptions, type DittoMeshOptions } from './options.js'
import type { DittoMesh } from './types.js'

export { isDittoDir } from './describe-store.js'

const KEY = Symbol.for('meshmirror.ditto.stores.v1')

/** Stores of this process by directory (kept on globalThis, so a reloaded module finds them). */
function stores(): Map<string, DittoMeshStore> {
  const g = globalThis as { [KEY]?: Map<string, DittoMeshStore> }
  g[KEY] ??= new Map()
  return g[KEY]
}

/**
 * Opens a Ditto-backed mesh store in `dir` (made absolute and created if
 * missing), without the instance manager: no shared handles, no owner
 * record. Prefer `openDittoMesh`. A store of this process still closing in
 * the same directory is waited for; one still open is `LOCK_HELD`.
 */
export async function openDittoStore(options: DittoMeshOptions & { dir: string }): Promise<DittoMesh> {
  checkDittoOptions(options)
  if (typeof options.dir !== 'string' || options.dir.length === 0) {
    throw new StorageError(ErrorCode.INVALID_OPTIONS, 'openDittoStore: dir must be a non-empty path.')
  }
  const dir = resolve(options.dir)
  const logger = options.logger ?? silentLogger
  const open = stores()
  const previous = open.get(dir)
  if (previous) await previous.closedOrOpen()
  try {
    mkdirSync(dir, { recursive: true })
  } catch (error) {
    throw new StorageError(ErrorCode.DIRECTORY_UNUSABLE, `Cannot create the Ditto directory ${dir}: ${String(error)}`, {
      cause: error,
      details: { dir },
    })
  }
  const ditto = await openDitto(dir, options, logger)
  let log: ChangeLog | undefined
  try {
    log = ChangeLog.open(dir)
    const store = new DittoMeshStore(ditto, dir, log, options)
    open.set(dir, store)
    store.onClosed(() => {
      if (open.get(dir) === store) open.delete(dir)
    })
    logger.info('Ditto mesh store opened', { dir, site: store.siteId })
    return store
  } catch (error) {
    log?.close()
    await ditto.close()
    throw error
  }
}
