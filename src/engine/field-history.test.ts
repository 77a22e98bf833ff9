import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { openBuiltinStore } from './open-builtin-store.js'
import type { BuiltinMesh } from './types.js'

const dirs: string[] = []
const open: BuiltinMesh[] = []
afterEach(async () => {
  for (const m of open.splice(0)) await m.close()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

async function replica(siteId: string, clock: { now: number }) {
  const dir = mkdtempSync(join(tmpdir(), 'mm-history-'))
  dirs.push(dir)
  const mesh = await openBuiltinStore({ siteId, dir, now: () => clock.now })
  open.push(mesh)
  return mesh
}

async function pull(from: BuiltinMesh, to: BuiltinMesh): Promise<void> {
  const chunk = await from.changesFor(await to.versionVector(), 0, 1000)
  await to.applyRemote(chunk.changes, { from: from.siteId, cursor: chunk.cursor, versionVector: chunk.versionVector })
}

describe('fieldHistory', () => {
  it('names, for each field, the device whose write the value is and when it wrote it', async () => {
    const clock = { now: Date.UTC(2026, 0, 5, 9, 0, 0) }
    const till1 = await replica('till1', clock)
    const till2 = await replica('till2', clock)
    await till1.upsert('counters', [{ _id: 'c1', branch: 1, curRcptNo: 7, label: 'front' }])
    await pull(till1, till2)
    clock.now += 60_000
    await till2.upsert('counters', [{ _id: 'c1', curRcptNo: 9 }])
    await till2.increment('counters', 'c1', 'stock', 3)
    await pull(till2, till1)

    const h = await till1.fieldHistory?.('counters', 'c1')
    expect(h?.live).toBe(true)
    const byField = Object.fromEntries((h?.fields ?? []).map((f) => [f.field, f]))
    expect(byField.branch).toMatchObject({ value: 1, site: 'till1', writtenAt: '2026-01-05T09:00:00.000Z' })
    expect(byField.label).toMatchObject({ value: 'front', site: 'till1' })
    expect(byField.curRcptNo).toMatchObject({ value: 9, site: 'till2', writtenAt: '2026-01-05T09:01:00.000Z' })
    expect(byField.stock?.value).toBe(3)
    expect(byField.stock?.increments).toEqual([expect.objectContaining({ site: 'till2', total: 3 })])
    expect(h?.written.site).toBe('till2')
    expect(h?.created.site).toBe('till1')
    expect(h?.versions).toEqual({ till1: expect.any(Number), till2: expect.any(Number) })
    // Both replicas tell the same story.
    expect(await till2.fieldHistory?.('counters', 'c1')).toEqual(h)
  })

  it('keeps the removal and says the document is gone; an unknown id has no history', async () => {
    const clock = { now: Date.UTC(2026, 0, 5, 9, 0, 0) }
    const mesh = await replica('till1', clock)
    await mesh.upsert('items', [{ _id: 'tea', name: 'Tea' }])
    clock.now += 1000
    await mesh.remove('items', ['tea'])
    const h = await mesh.fieldHistory?.('items', 'tea')
    expect(h?.live).toBe(false)
    expect(h?.removed).toMatchObject({ site: 'till1', writtenAt: '2026-01-05T09:00:01.000Z' })
    expect(await mesh.fieldHistory?.('items', 'nope')).toBeUndefined()
    await expect(mesh.fieldHistory?.('', 'x')).rejects.toMatchObject({ code: 'INVALID_COLLECTION' })
  })
})
