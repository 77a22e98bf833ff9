import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openDittoStore } from '../../src/ditto/index.js'
import { runMeshStoreConformance } from '../../src/testing.js'

runMeshStoreConformance(
  'Ditto SDK',
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mm-ditto-conf-'))
    return {
      store: await openDittoStore({ dir }),
      reopen: () => openDittoStore({ dir }),
      cleanup: async () => rmSync(dir, { recursive: true, force: true }),
    }
  },
  {
    skip: {
      'increment adds to counters, starting from 0, and upsert resets them':
        'Ditto counters hold integers, the test increments by 0.5; test/ditto/ditto-store.test.ts covers the rest',
    },
  },
)
