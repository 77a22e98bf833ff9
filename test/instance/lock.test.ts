import { afterEach, describe, expect, it, vi } from 'vitest'
import { LockHeldError } from '../../src/errors.js'
import { openMeshInstance } from '../../src/instance/instance.js'
import { readOwner } from '../../src/instance/owner.js'
import { type Child, HOLDER, removeTempRoots, spawnFixture, tempRoot } from './helpers.js'

const children: Child[] = []
afterEach(async () => {
  for (const c of children.splice(0)) await c.kill()
  removeTempRoots()
})

function holder(dir: string, docs: number): Child {
  const c = spawnFixture(HOLDER, [dir, String(docs)])
  children.push(c)
  return c
}

describe('a directory held by another live process', () => {
  it('fails fast with LOCK_HELD naming the holder', async () => {
    const dir = `${tempRoot()}/pos`
    const a = holder(dir, 10)
    const { ready: pid } = await a.waitFor((l) => 'ready' in l)
    const error = await openMeshInstance({ dir, onLocked: 'fail' }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(LockHeldError)
    const held = error as LockHeldError
    expect(held.code).toBe('LOCK_HELD')
    expect(held.holder?.pid).toBe(pid)
    expect(held.message).toContain(`process ${pid}`)
    expect(held.message).toContain('holder.ts')
  })

  it('waits with the event loop running, then fails within the timeout', async () => {
    const dir = `${tempRoot()}/pos`
    const a = holder(dir, 0)
    await a.waitFor((l) => 'ready' in l)
    let ticks = 0
    const ticker = setInterval(() => ticks++, 10)
    const started = performance.now()
    const error = await openMeshInstance({ dir, lockTimeoutMs: 600 }).catch((e: unknown) => e)
    const waited = performance.now() - started
    clearInterval(ticker)
    expect(error).toBeInstanceOf(LockHeldError)
    expect(waited).toBeGreaterThanOrEqual(550)
    expect(waited).toBeLessThan(5_000)
    // The event loop ran throughout the wait.
    expect(ticks).toBeGreaterThan(20)
  })

  it('opens with all committed data once the holder is killed with SIGKILL', async () => {
    const dir = `${tempRoot()}/pos`
    const a = holder(dir, 500)
    await a.waitFor((l) => 'ready' in l)
    const opening = openMeshInstance({ dir, lockTimeoutMs: 10_000, healthIntervalMs: 0 })
    await a.kill('SIGKILL')
    const killedAt = performance.now()
    const b = await opening
    expect(performance.now() - killedAt).toBeLessThan(1_000)
    expect(await b.store.count({ collection: 'items' })).toBe(500)
    expect(readOwner(b.dir)?.pid).toBe(process.pid)
    const health = await b.health()
    expect(health.lock).toMatchObject({ held: true, mode: 'kernel' })
    expect(health.storeOpen).toBe(true)
    await b.close()
  })

  it("falls back to a unique directory with onLocked: 'unique', and says why", async () => {
    const root = tempRoot()
    const dir = `${root}/pos`
    const a = holder(dir, 3)
    const { ready: pid } = await a.waitFor((l) => 'ready' in l)
    const warnings: string[] = []
    const logger = { debug() {}, info() {}, warn: (m: string) => warnings.push(m), error() {} }
    const b = await openMeshInstance({ dir, onLocked: 'unique', logger, healthIntervalMs: 0 })
    expect(b.strategy).toBe('unique')
    expect(b.dir).toMatch(new RegExp(`${root}/pos_\\d{8}_\\d{6}_${process.pid}_[a-z0-9]+$`))
    expect(b.fallback).toContain(`process ${pid}`)
    expect(warnings.join('\n')).toMatch(/NOT visible/)
    expect(await b.store.count({ collection: 'items' })).toBe(0)
    await b.close()
  })
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
    const reloaded = (await import('../../src/instance/instance.js')) as typeof import('../../src/instance/instance.js')
    expect(reloaded.openMeshInstance).not.toBe(openMeshInstance)
    const second = await reloaded.openMeshInstance({ dir, onLocked: 'fail' })
    expect(second.store).toBe(first.store)
    await second.close()
    await first.close()
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

describe('health monitoring', () => {
  it('emits health periodically and lock-lost when the lock is no longer ours', async () => {
    const dir = `${tempRoot()}/pos`
    const inst = await openMeshInstance({ dir, healthIntervalMs: 20 })
    const health = await new Promise<unknown>((resolve) => {
      const off = inst.on('health', (h) => {
        off()
        resolve(h)
      })
    })
    expect(health).toMatchObject({
      dir: inst.dir,
      engine: 'builtin',
      lock: { held: true },
      storeOpen: true,
      handles: 1,
    })
    const lost = new Promise<{ dir: string }>((resolve) => inst.on('lock-lost', resolve))
    // Someone removes the owner record: the monitor notices that the files no longer say it is ours.
    const { rmSync } = await import('node:fs')
    rmSync(`${inst.dir}/meshmirror.owner.json`)
    expect(await lost).toEqual({ dir: inst.dir })
    expect((await inst.health()).lastError).toMatch(/no longer held/)
    await inst.close()
  })
})

describe('shutdown', () => {
  it('closes cleanly on SIGTERM when asked to handle signals, releasing the lock', async () => {
    const dir = `${tempRoot()}/pos`
    const a = spawnFixture(HOLDER, [dir, '20', '--signals'])
    children.push(a)
    await a.waitFor((l) => 'ready' in l)
    a.process.kill('SIGTERM')
    await a.waitFor((l) => 'closed' in l)
    await a.exited
    expect(a.process.signalCode).toBe('SIGTERM')
    // A clean close leaves no owner record behind (a crash would).
    expect(readOwner(dir)).toBeUndefined()
    const b = await openMeshInstance({ dir, onLocked: 'fail', healthIntervalMs: 0 })
    expect(await b.store.count({ collection: 'items' })).toBe(20)
    await b.close()
  })
})

describe('wrong input', () => {
  it('rejects a file where a directory is expected, and bad options', async () => {
    const root = tempRoot()
    const { writeFileSync } = await import('node:fs')
    writeFileSync(`${root}/file`, 'x')
    await expect(openMeshInstance({ dir: `${root}/file` })).rejects.toMatchObject({ code: 'DIRECTORY_UNUSABLE' })
    await expect(openMeshInstance({ dir: `${root}/file/sub` })).rejects.toMatchObject({ code: 'DIRECTORY_UNUSABLE' })
    await expect(openMeshInstance({ dir: '' })).rejects.toMatchObject({ code: 'INVALID_OPTIONS' })
    await expect(openMeshInstance({ dir: root, strategy: 'weird' as never })).rejects.toMatchObject({
      code: 'INVALID_OPTIONS',
    })
  })

  it('aborts a wait through its AbortSignal', async () => {
    const dir = `${tempRoot()}/pos`
    const a = holder(dir, 0)
    await a.waitFor((l) => 'ready' in l)
    const controller = new AbortController()
    const opening = openMeshInstance({ dir, lockTimeoutMs: 30_000, signal: controller.signal })
    setTimeout(() => controller.abort(), 100)
    await expect(opening).rejects.toMatchObject({ code: 'ABORTED' })
  })
})
