import { existsSync, mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { openBuiltinStore } from '../../src/engine/open-builtin-store.js'
import type { BuiltinMesh } from '../../src/engine/types.js'
import { openMeshInstance } from '../../src/index.js'
import { MIGRATED_FILE, readMigrated } from '../../src/instance/migrated-marker.js'
import { HOLDER, removeTempRoots, spawnFixture, tempRoot } from './helpers.js'

afterEach(removeTempRoots)

/**
 * Three directories as per-run strategies leave them, each with its own
 * documents: two named by our unique strategy, one by the lock-fix seed.
 */
async function oldUniqueDirs(root: string, perDir: number): Promise<string[]> {
  const names = ['pos_1767225600000_123456', 'pos_20260101_000001_1001_abc1', 'pos_20260101_000002_1002_abc2']
  const dirs: string[] = []
  for (const [k, name] of names.entries()) {
    const dir = join(root, name)
    const mesh = await openBuiltinStore({ dir })
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
    // Not a per-run name: never taken for one.
    const backup = join(root, 'pos_backup')
    await (await openBuiltinStore({ dir: backup })).close()

    const first = await openMeshInstance({
      dir: join(root, 'pos'),
      migrateFrom: 'unique-siblings',
      healthIntervalMs: 0,
    })
    expect(first.migration?.migrated.map((m) => m.source)).toEqual(sources)
    expect(first.migration?.migrated.every((m) => m.documents === 51 && m.resumedFrom === 0)).toBe(true)
    expect(first.migration?.failed).toEqual([])
    expect(await first.store.count({ collection: 'items' })).toBe(150)
    for (let k = 0; k < 3; k++)
      expect(await first.store.get('items', `run${k}-49`)).toEqual({ _id: `run${k}-49`, run: k, i: 49 })
    expect(await first.store.get('settings', 'shop')).toEqual({ _id: 'shop', lastRun: 2 })
    for (const s of sources) expect(readMigrated(s)?.into).toBe(first.dir)
    expect(existsSync(join(backup, MIGRATED_FILE))).toBe(false)
    const sequence = (await first.store.stats()).sequence
    await first.close()

    const second = await openMeshInstance({
      dir: join(root, 'pos'),
      migrateFrom: 'unique-siblings',
      healthIntervalMs: 0,
    })
    expect(second.migration?.migrated).toEqual([])
    expect(second.migration?.skipped.map((s) => s.reason)).toEqual([
      'already-migrated',
      'already-migrated',
      'already-migrated',
    ])
    expect(second.migration?.skipped[0]?.detail).toContain(second.dir)
    // Nothing was written.
    expect((await second.store.stats()).sequence).toBe(sequence)
    expect(await second.store.count({ collection: 'items' })).toBe(150)
    await second.close()
  })

  it('resumes after a crash in the middle', async () => {
    const root = tempRoot()
    const sources = await oldUniqueDirs(root, 2500)
    const target = join(root, 'pos')
    const crashing = spawnFixture(HOLDER, [target, 'migrate', ...sources, '--crash-after', '4'])
    await crashing.exited
    expect(crashing.process.signalCode).toBe('SIGKILL')
    // 2,501 documents per source in chunks of 1,000: the first source took 3 reports, the second was cut after one.
    expect(crashing.lines.filter((l) => 'progress' in l)).toHaveLength(4)
    expect(crashing.lines.some((l) => 'migrated' in l)).toBe(false)
    expect(readMigrated(sources[0]!)).toBeDefined()
    expect(readMigrated(sources[1]!)).toBeUndefined()

    const inst = await openMeshInstance<BuiltinMesh>({ dir: target, migrateFrom: sources, healthIntervalMs: 0 })
    const report = inst.migration!
    expect(report.skipped.map((s) => [s.source, s.reason])).toEqual([[sources[0], 'already-migrated']])
    // The source cut short resumes from its last applied chunk instead of starting over.
    const resumed = report.migrated.find((m) => m.source === sources[1])
    expect(resumed?.resumedFrom).toBeGreaterThan(0)
    expect(resumed?.documents).toBeLessThan(2501)
    expect(report.migrated.find((m) => m.source === sources[2])).toMatchObject({ resumedFrom: 0, documents: 2501 })
    expect(await inst.store.count({ collection: 'items' })).toBe(7500)
    await inst.close()
  })

  it('skips a source in use, and a failed source neither blocks the open nor gets cleaned up', async () => {
    const root = tempRoot()
    const [busy, , healthy] = await oldUniqueDirs(root, 5)
    const broken = join(root, 'pos_20250101_000000_1_dead')
    mkdirSync(broken)
    writeFileSync(join(broken, 'mesh.sqlite'), 'not a database at all, but long enough to be read as one')
    const holder = spawnFixture(HOLDER, [busy!, '0'])
    const { ready: pid } = await holder.waitFor((l) => 'ready' in l)
    try {
      for (const d of [broken, healthy!]) {
        const old = new Date(Date.now() - 72 * 3600_000)
        for (const f of readdirSync(d)) utimesSync(join(d, f), old, old)
      }
      const inst = await openMeshInstance({
        dir: join(root, 'pos'),
        migrateFrom: 'unique-siblings',
        cleanup: true,
        healthIntervalMs: 0,
      })
      const m = inst.migration!
      expect(m.skipped).toEqual([{ source: busy, reason: 'in-use', detail: expect.stringContaining(`process ${pid}`) }])
      expect(m.failed).toEqual([{ source: broken, error: expect.stringMatching(/mesh store/) }])
      expect(m.migrated.map((x) => x.source)).toContain(healthy)
      expect((await inst.health()).lastError).toMatch(/migration failed/)
      // Cleanup removed the migrated old one; kept the locked one, the failed one and the current one.
      expect(inst.cleanup?.removed.map((d) => d.dir)).toEqual([healthy])
      expect(existsSync(healthy!)).toBe(false)
      expect(inst.cleanup?.kept).toContainEqual({ dir: broken, reason: 'kept by request' })
      expect(existsSync(join(broken, 'mesh.sqlite')) && existsSync(busy!) && existsSync(inst.dir)).toBe(true)
      await inst.close()
    } finally {
      await holder.kill()
    }
  })

  it('rejects a named source that is missing, a file or not a mesh, before creating anything', async () => {
    const root = tempRoot()
    writeFileSync(join(root, 'file'), 'x')
    mkdirSync(join(root, 'plain'))
    const target = join(root, 'pos')
    await expect(openMeshInstance({ dir: target, migrateFrom: [join(root, 'nope')] })).rejects.toMatchObject({
      code: 'DIRECTORY_UNUSABLE',
    })
    await expect(openMeshInstance({ dir: target, migrateFrom: [join(root, 'file')] })).rejects.toMatchObject({
      code: 'DIRECTORY_UNUSABLE',
    })
    await expect(openMeshInstance({ dir: target, migrateFrom: [join(root, 'plain')] })).rejects.toMatchObject({
      code: 'STORE_INCOMPATIBLE',
    })
    expect(existsSync(target)).toBe(false)
    expect(readdirSync(join(root, 'plain'))).toEqual([])
  })
})
