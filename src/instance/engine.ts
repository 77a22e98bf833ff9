import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { STORE_FILE } from '../engine/database.js'
import { openMesh } from '../engine/open-mesh.js'
import type { BuiltinMesh, OpenMeshOptions } from '../engine/types.js'
import type { MeshEngine } from './mesh-engine.js'
import { migrateBuiltin } from './migration.js'

/** The builtin engine, with store options applied to every open. */
export function builtinEngine(options: Omit<OpenMeshOptions, 'dir' | 'logger'> = {}): MeshEngine<BuiltinMesh> {
  return {
    name: 'builtin',
    open: (dir, { logger }) => openMesh({ ...options, dir, logger }),
    isMeshDir: (dir) => existsSync(join(dir, STORE_FILE)),
    migrate: (sourceDir, target, opts) => migrateBuiltin(sourceDir, target, opts),
  }
}
