/**
 * The instance manager as the package entry offers it: the builtin engine
 * is the default wherever no engine is named. `src/instance/` itself has no
 * default engine and knows no store implementation.
 */
import {
  type CleanupOptions,
  type CleanupReport,
  cleanupEngineDirs,
  type ListOptions,
  listEngineDirs,
  type MeshDirInfo,
  resolveMeshRoot,
} from '../instance/dirs.js'
import { type Diagnosis, diagnoseDir } from '../instance/doctor.js'
import { openEngineInstance } from '../instance/instance.js'
import type { LockOptions } from '../instance/lock.js'
import type { MeshEngine } from '../instance/mesh-engine.js'
import type { ClosableStore, EngineInstance, EngineInstanceOptions } from '../instance/types.js'
import { builtinEngine } from './builtin-engine.js'
import type { BuiltinMesh } from './types.js'

/** Options of `openMeshInstance`; the store is the builtin mesh unless `engine` names another. */
export type OpenInstanceOptions<S extends ClosableStore = BuiltinMesh> = EngineInstanceOptions<S>

/** An open instance; its store is the builtin mesh unless opened with another engine. */
export type MeshInstance<S extends ClosableStore = BuiltinMesh> = EngineInstance<S>

/**
 * Opens (or joins) the instance for a directory, with the builtin engine
 * unless `options.engine` names another. Later opens of an instance already
 * open in this process join it and their other options are ignored.
 */
export function openMeshInstance<S extends ClosableStore = BuiltinMesh>(
  options: OpenInstanceOptions<S>,
): Promise<MeshInstance<S>> {
  // Anything but an options object goes through as it is, to be refused with the reason.
  const named =
    typeof options === 'object' && options !== null && options.engine === undefined
      ? { ...options, engine: builtinEngine() as unknown as MeshEngine<S> }
      : (options as OpenInstanceOptions<S> & { engine: MeshEngine<S> })
  return openEngineInstance(named)
}

/**
 * Mesh directories directly under `root` (those holding a store of the
 * engine, the builtin one by default, or a meshmirror lock), sorted by name.
 * Reads only: probing a lock writes nothing.
 */
export function listMeshDirs(root: string, options: ListOptions = {}): MeshDirInfo[] {
  return listEngineDirs(root, { ...options, engine: options.engine ?? builtinEngine() })
}

/**
 * Removes mesh directories under `root` unused for longer than
 * `olderThanMs`. Never removes a directory that is locked, open in this
 * process, or in `keep`: each one is locked by the cleanup itself while it
 * is removed, so a process opening it at that moment waits and then finds it
 * gone instead of losing writes.
 */
export function cleanupMeshDirs(root: string, options: CleanupOptions = {}): CleanupReport {
  return cleanupEngineDirs(root, { ...options, engine: options.engine ?? builtinEngine() })
}

/**
 * Examines a builtin mesh directory without changing it. Throws
 * `DIRECTORY_UNUSABLE` when it does not exist, is a file or cannot be read,
 * and `STORE_INCOMPATIBLE` when it holds no meshmirror store.
 */
export function diagnose(dir: string, lockOptions?: LockOptions): Diagnosis {
  return diagnoseDir(dir, builtinEngine(), lockOptions)
}

/** The absolute real path of a root of builtin mesh directories (see `resolveMeshRoot`). */
export function resolveBuiltinRoot(root: string): string {
  return resolveMeshRoot(root, builtinEngine())
}
