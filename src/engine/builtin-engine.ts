import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { MeshEngine } from '../instance/mesh-engine.js'
import { STORE_FILE } from './database.js'
import { describeBuiltinStore } from './describe-store.js'
import { migrateBuiltin } from './migrate-builtin.js'
import { openBuiltinStore } from './open-builtin-store.js'
import type { BuiltinMesh, OpenMeshOptions } from './types.js'

/** The builtin engine, with store options applied to every open. */
export function builtinEngine(options: Omit<OpenMeshOptions, 'dir' | 'logger'> = {}): MeshEngine<BuiltinMesh> {
  return {
    name: 'builtin',
    open: (dir, { logger }) => openBuiltinStore({ ...options, dir, logger }),
    isMeshDir: (dir) => existsSync(join(dir, STORE_FILE)),
    describeStore: describeBuiltinStore,
    migrate: (sourceDir, target, opts) => migrateBuiltin(sourceDir, target, opts),
  }
}
