import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, expect, it } from 'vitest'
import { encodedChanges } from './encoded-changes.js'
import { openBuiltinStore } from './open-builtin-store.js'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

it('reads what is committed, between transactions and while one is open and changes what is read', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mm-cr-'))
  dirs.push(dir)
  await using a = await openBuiltinStore({ dir, siteId: 'sitea' })
  await a.upsert('items', [
    { _id: 'kept', n: 1 },
    { _id: 'changed', n: 1 },
  ])
  const read = async () => ({
    changes: await a.changesFor({}, 0, 100),
    encoded: await encodedChanges(a, {}, 0, 100),
    count: await a.count({ collection: 'items' }),
    found: await a.find({ collection: 'items', filter: { n: 1 } }),
    changed: await a.get('items', 'changed'),
    added: await a.get('items', 'added'),
  })
  const committed = await read()
  expect(committed.count).toBe(2)
  expect(committed.encoded.changes).toEqual(committed.changes.changes.map((c) => JSON.stringify(c)))
  await expect(
    a.transaction(async (tx) => {
      await tx.upsert('items', [{ _id: 'changed', n: 2 }])
      await tx.upsert('items', [{ _id: 'added', n: 1 }])
      // Read from outside the transaction, while it is open.
      expect(await read()).toEqual(committed)
      throw new Error('rolled back')
    }),
  ).rejects.toThrow('rolled back')
  expect(await read()).toEqual(committed)
  await a.upsert('items', [{ _id: 'added', n: 1 }])
  const after = await read()
  expect(after.count).toBe(3)
  expect(after.added).toEqual({ _id: 'added', n: 1 })
  expect(after.changes.changes.map((c) => c.id)).toEqual(['kept', 'changed', 'added'])
})
