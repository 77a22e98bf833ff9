/**
 * The Ditto backend (`meshmirror/ditto`): the mesh port on the
 * `@dittolive/ditto` 5.x SDK, an optional peer dependency.
 *
 * @packageDocumentation
 */

export { CHANGE_LOG_FILE } from './change-log.js'
export {
  type DittoInstanceHealth,
  type DittoMeshInstance,
  dittoEngine,
  type OpenDittoMeshOptions,
  openDittoMesh,
} from './engine.js'
export { DITTO_LOCK_FILE, lockHolder } from './open-ditto.js'
export { isDittoDir, openDittoStore } from './open-store.js'
export type { DittoLogLevel, DittoMeshOptions, DittoTransports } from './options.js'
export type { DittoMesh, DittoMeshStats, DittoPeer, DittoPresence } from './types.js'
