import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { encodedChanges } from './encoded-changes.js'
import { openBuiltinStore } from './open-builtin-store.js'
import type { BuiltinMesh } from './types.js'

describe('encodedChanges', () => {
  let dirs: string[] = []
  let a: BuiltinMesh
  let b: BuiltinMesh

  beforeEach(async () => {
    dirs = [mkdtempSync(join(tmpdir(), 'mm-enc-')), mkdtempSync(join(tmpdir(), 'mm-enc-'))]
    a = await openBuiltinStore({ dir: dirs[0]!, siteId: 'siteA' })
    b = await openBuiltinStore({ dir: dirs[1]!, siteId: 'siteB' })
    // Content that JSON escapes, a created-once document, an updated one, a counter, a removal, another site's change.
    await a.upsert('items', [
      { _id: 'plain', n: 1 },
      { _id: 'quote"back\\slash\u2028', s: 'é "x" \n\t\u0001 😀', nested: { list: [1, null, true, -0.5e-7] } },
      { _id: 'gone', x: 1 },
    ])
    await a.upsert('items', [{ _id: 'plain', n: 2, added: 'yes' }])
    await a.increment('counts', 'c', 'n', 3)
    await a.remove('items', ['gone'])
    await b.upsert('other_col', [{ _id: 'fromB', v: 'b' }])
    await a.applyRemote((await b.changesFor({}, 0, 100)).changes)
  })
  afterEach(async () => {
    await a.close()
    await b.close()
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  })

  it("gives, for each change, exactly the text JSON.stringify gives for changesFor's", async () => {
    for (const [vv, after, limit] of [
      [{}, 0, 100],
      [{}, 0, 2],
      [{}, 3, 100],
      [await b.versionVector(), 0, 100],
    ] as const) {
      const plain = await a.changesFor(vv, after, limit)
      const encoded = await encodedChanges(a, vv, after, limit)
      expect(plain.changes.length).toBeGreaterThan(0)
      expect(encoded.changes).toEqual(plain.changes.map((c) => JSON.stringify(c)))
      expect({ ...encoded, changes: undefined }).toEqual({ ...plain, changes: undefined })
    }
  })

  it('encodes the changes of a BuiltinMesh that is not this engine’s store too', async () => {
    const wrapped = { changesFor: a.changesFor.bind(a) } as unknown as BuiltinMesh
    expect(await encodedChanges(wrapped, {}, 0, 100)).toEqual(await encodedChanges(a, {}, 0, 100))
  })
})
