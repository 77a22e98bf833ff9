import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runMeshStoreConformance } from '../testing.js'
import { openBuiltinStore } from './open-builtin-store.js'

runMeshStoreConformance('builtin engine', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mm-conformance-'))
  return {
    store: await openBuiltinStore({ dir }),
    reopen: () => openBuiltinStore({ dir }),
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  }
})
