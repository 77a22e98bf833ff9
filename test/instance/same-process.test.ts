import { symlinkSync } from 'node:fs'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { openMeshInstance } from '../../src/index.js'
import { silentLogger } from '../../src/logger.js'
import { type Child, removeTempRoots, spawnFixture, tempRoot } from './helpers.js'

const children: Child[] = []
afterEach(async () => {
  for (const c of children.splice(0)) await c.kill()
  removeTempRoots()
})

describe('the same directory opened twice in one process', () => {
  it('returns one instance; closing one handle keeps the other working', async () => {
    const dir = `${tempRoot()}/pos`
    const [a, b] = await Promise.all([openMeshInstance({ dir }), openMeshInstance({ dir })])
    expect(a.store).toBe(b.store)
    expect((await a.health()).handles).toBe(2)
    await a.close()
    await a.close()
    await b.store.upsert('items', [{ _id: 'still-open' }])
    expect(await b.store.get('items', 'still-open')).toEqual({ _id: 'still-open' })
    expect((await b.health()).handles).toBe(1)
    await b.close()
    await expect(b.store.get('items', 'x')).rejects.toMatchObject({ code: 'STORE_CLOSED' })
    // Released: it opens again.
    const c = await openMeshInstance({ dir, onLocked: 'fail' })
    expect(await c.store.get('items', 'still-open')).toEqual({ _id: 'still-open' })
    await c.close()
  })

  it('finds the live instance from a freshly imported copy of the module (hot reload)', async () => {
    const dir = `${tempRoot()}/pos`
    const first = await openMeshInstance({ dir })
    vi.resetModules()
    const reloaded = (await import('../../src/index.js')) as typeof import('../../src/index.js')
    expect(reloaded.openMeshInstance).not.toBe(openMeshInstance)
    const second = await reloaded.openMeshInstance({ dir, onLocked: 'fail' })
    expect(second.store).toBe(first.store)
    await second.close()
    await first.close()
  })

  it('in a real process, fresh module copies share the instance, and a reopen after an un-awaited close succeeds', async () => {
    const dir = `${tempRoot()}/pos`
    const c = spawnFixture('test/instance/fixtures/reload.ts', [dir])
    children.push(c)
    const result = await c.waitFor((l) => 'sameStore' in l)
    expect(result).toEqual({
      distinctModules: true,
      sameStore: true,
      handles: 2,
      reopenedStoreIsNew: true,
      sawOwnLock: false,
      seen: { _id: 'before-reload' },
    })
    expect(await c.exited).toBe(0)
  })

  it('a reopen right after an un-awaited close waits for it instead of meeting its own lock', async () => {
    const dir = `${tempRoot()}/pos`
    const a = await openMeshInstance({ dir, healthIntervalMs: 0 })
    await a.store.upsert('items', [{ _id: 'x' }])
    const closing = a.close()
    const debug: string[] = []
    const logger = { ...silentLogger, debug: (m: string) => debug.push(m) }
    const b = await openMeshInstance({ dir, onLocked: 'fail', healthIntervalMs: 0, logger })
    await closing
    // It waited for the close; it never found the directory locked (by this very process).
    expect(debug.filter((m) => m.includes('held'))).toEqual([])
    expect(b.store).not.toBe(a.store)
    expect(await b.store.get('items', 'x')).toEqual({ _id: 'x' })
    await b.close()
  })

  it('treats a symlinked spelling of the directory as the same instance', async () => {
    const root = tempRoot()
    const a = await openMeshInstance({ dir: `${root}/real/pos`, healthIntervalMs: 0 })
    symlinkSync(`${root}/real`, `${root}/link`)
    const b = await openMeshInstance({ dir: `${root}/link/pos`, onLocked: 'fail', healthIntervalMs: 0 })
    expect(b.dir).toBe(a.dir)
    expect(b.store).toBe(a.store)
    await b.close()
    await a.close()
  })

  it('resolves relative directories to absolute real paths', async () => {
    const root = tempRoot()
    const cwd = process.cwd()
    process.chdir(root)
    try {
      const inst = await openMeshInstance({ dir: 'rel/mesh', healthIntervalMs: 0 })
      expect(inst.dir).toBe(`${root}/rel/mesh`)
      await inst.close()
    } finally {
      process.chdir(cwd)
    }
  })
})
