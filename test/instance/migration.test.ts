import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { openMesh } from '../../src/engine/open-mesh.js'
import { openMeshInstance } from '../../src/instance/instance.js'
import { MIGRATED_FILE } from '../../src/instance/migration.js'
import { HOLDER, removeTempRoots, spawnFixture, tempRoot } from './helpers.js'

afterEach(removeTempRoots)

/** Three directories as the unique strategy leaves them, each with its own documents. */
async function oldUniqueDirs(root: string, perDir: number): Promise<string[]> {
  const dirs: string[] = []
  for (let k = 0; k < 3; k++) {
    const dir = join(root, `pos_20260101_00000${k}_${1000 + k}_abc${k}`)
    const mesh = await openMesh({ dir })
    const docs = Array.from({ length: perDir }, (_, i) => ({ _id: `run${k}-${i}`, run: k, i }))
    await mesh.upsert('items', docs)
    // A document every run wrote: the merge keeps the latest write.
    await mesh.upsert('settings', [{ _id: 'shop', lastRun: k }])
    await mesh.close()
    dirs.push(dir)
  }
  return dirs
}

describe('migration from old directories', () => {
  it('merges every document once, then does nothing', async () => {
    const root = tempRoot()
    const sources = await oldUniqueDirs(root, 50)
    const first = await openMeshInstance({
      dir: join(root, 'pos'),
      migrateFrom: 'unique-siblings',
      healthIntervalMs: 0,
    })
    expect(first.migration?.migrated.map((m) => m.source)).toEqual(sources)
    expect(first.migration?.migrated.every((m) => m.documents === 51)).toBe(true)
    expect(await first.store.count({ collection: 'items' })).toBe(150)
    expect(await first.store.get('settings', 'shop')).toEqual({ _id: 'shop', lastRun: 2 })
    for (const s of sources) expect(existsSync(join(s, MIGRATED_FILE))).toBe(true)
    await first.close()

    const second = await openMeshInstance({
      dir: join(root, 'pos'),
      migrateFrom: 'unique-siblings',
      healthIntervalMs: 0,
    })
    expect(second.migration?.migrated).toEqual([])
    expect(second.migration?.skipped.map((s) => s.reason)).toEqual([
      'already migrated',
      'already migrated',
      'already migrated',
    ])
    expect(await second.store.count({ collection: 'items' })).toBe(150)
    await second.close()
  })

  it('resumes after a crash in the middle', async () => {
    const root = tempRoot()
    const sources = await oldUniqueDirs(root, 2500)
    const target = join(root, 'pos')
    const crashing = spawnFixture(HOLDER, [target, 'migrate', ...sources, '--crash-after', '4'])
    await crashing.exited
    expect(crashing.lines.filter((l) => 'progress' in l)).toHaveLength(4)
    expect(crashing.lines.some((l) => 'migrated' in l)).toBe(false)

    const inst = await openMeshInstance({ dir: target, migrateFrom: sources, healthIntervalMs: 0 })
    const report = inst.migration!
    // The source cut short resumes from its last applied chunk instead of starting over.
    expect(report.migrated.some((m) => m.resumedFrom > 0)).toBe(true)
    expect(report.skipped.map((s) => s.reason)).toEqual(['already migrated'])
    expect(await inst.store.count({ collection: 'items' })).toBe(7500)
    await inst.close()
  })

  it('skips a source in use and refuses one that is not a mesh', async () => {
    const root = tempRoot()
    const [busy] = await oldUniqueDirs(root, 5)
    const holder = spawnFixture(HOLDER, [busy!, '0'])
    await holder.waitFor((l) => 'ready' in l)
    try {
      const inst = await openMeshInstance({ dir: join(root, 'pos'), migrateFrom: [busy!], healthIntervalMs: 0 })
      expect(inst.migration?.skipped).toEqual([{ source: busy, reason: 'in use by another process' }])
      await inst.close()
    } finally {
      await holder.kill()
    }
    await expect(
      openMeshInstance({ dir: join(root, 'pos2'), migrateFrom: [root], healthIntervalMs: 0 }),
    ).rejects.toMatchObject({ code: 'STORE_INCOMPATIBLE' })
    // The failed open released its lock.
    const again = await openMeshInstance({ dir: join(root, 'pos2'), onLocked: 'fail', healthIntervalMs: 0 })
    await again.close()
  })
})
