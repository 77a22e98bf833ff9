import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { openBuiltinStore } from '../engine/open-builtin-store.js'
import type { BuiltinMesh } from '../engine/types.js'
import { decodeMessage, encodeChanges, encodeMessage } from './protocol.js'

describe('encodeChanges', () => {
  let dir: string
  let a: BuiltinMesh

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mm-proto-'))
    a = await openBuiltinStore({ dir, siteId: 'siteA' })
    await a.upsert('items', [
      { _id: 'x"\\', s: 'é \n 😀' },
      { _id: 'y', n: [1, { z: null }] },
    ])
    await a.remove('items', ['y'])
  })
  afterEach(async () => {
    await a.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('makes the frame encodeMessage makes', async () => {
    const chunk = await a.changesFor({}, 0, 100)
    const texts = chunk.changes.map((c) => JSON.stringify(c))
    for (const vv of [undefined, { siteA: 7, 'site-B_2': 1 }]) {
      for (const changes of [chunk.changes, []]) {
        const m = { t: 'changes' as const, n: 3, changes, cursor: 42, complete: vv !== undefined }
        expect(encodeChanges(3, changes.length ? texts : [], 42, vv !== undefined, vv)).toBe(
          encodeMessage(vv ? { ...m, vv } : m),
        )
        expect(decodeMessage(encodeChanges(3, changes.length ? texts : [], 42, vv !== undefined, vv))).toEqual(
          vv ? { ...m, vv } : m,
        )
      }
    }
  })
})
