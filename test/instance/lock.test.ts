import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { LockHeldError } from '../../src/errors.js'
import { openMeshInstance } from '../../src/index.js'
import { DirectoryLock } from '../../src/instance/lock.js'
import { OWNER_FILE, readOwner } from '../../src/instance/owner.js'
import { silentLogger } from '../../src/logger.js'
import { type Child, HOLDER, removeTempRoots, spawnFixture, tempRoot } from './helpers.js'

const children: Child[] = []
afterEach(async () => {
  for (const c of children.splice(0)) await c.kill()
  removeTempRoots()
})

function holder(dir: string, docs: number, ...flags: string[]): Child {
  const c = spawnFixture(HOLDER, [dir, String(docs), ...flags])
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
    expect(held.message).toContain(held.holder!.hostname)
    expect(held.message).toContain(held.holder!.acquiredAt)
    expect(held.holder?.alive).toBe(true)
  })

  it('excludes processes that chose different lock modes for one directory', async () => {
    const root = tempRoot()
    const a = holder(`${root}/a`, 0, '--lock-mode', 'heartbeat')
    const b = holder(`${root}/b`, 0, '--lock-mode', 'kernel')
    const [{ ready: pidA }, { ready: pidB }] = await Promise.all([
      a.waitFor((l) => 'ready' in l),
      b.waitFor((l) => 'ready' in l),
    ])
    const kernelVsHeartbeat = await openMeshInstance({ dir: `${root}/a`, onLocked: 'fail', lock: { mode: 'kernel' } })
      .then(() => 'opened')
      .catch((e: LockHeldError) => e.holder?.pid)
    const heartbeatVsKernel = await openMeshInstance({
      dir: `${root}/b`,
      onLocked: 'fail',
      lock: { mode: 'heartbeat' },
    })
      .then(() => 'opened')
      .catch((e: LockHeldError) => e.holder?.pid)
    expect([kernelVsHeartbeat, heartbeatVsKernel]).toEqual([pidA, pidB])
    // A heartbeat holder killed on this host is known dead at once: no wait for its heartbeat to go stale.
    await a.kill('SIGKILL')
    const t = performance.now()
    const c = await openMeshInstance({ dir: `${root}/a`, lock: { mode: 'heartbeat' }, healthIntervalMs: 0 })
    expect(performance.now() - t).toBeLessThan(1_000)
    expect((await c.health()).lock).toMatchObject({ held: true, mode: 'heartbeat' })
    await c.close()
  })

  it('waits with the event loop running, then fails within the timeout', async () => {
    const dir = `${tempRoot()}/pos`
    const a = holder(dir, 0)
    const { ready: pid } = await a.waitFor((l) => 'ready' in l)
    let ticks = 0
    const ticker = setInterval(() => ticks++, 10)
    const started = performance.now()
    const error = await openMeshInstance({ dir, lockTimeoutMs: 600 }).catch((e: unknown) => e)
    const waited = performance.now() - started
    clearInterval(ticker)
    expect(error).toBeInstanceOf(LockHeldError)
    expect((error as LockHeldError).holder?.pid).toBe(pid)
    expect((error as LockHeldError).message).toMatch(/waited \d+ ms/)
    expect(waited).toBeGreaterThanOrEqual(550)
    expect(waited).toBeLessThan(5_000)
    // The event loop ran throughout the wait.
    expect(ticks).toBeGreaterThan(20)
  })

  it('opens with all committed data once the holder is killed with SIGKILL', async () => {
    const dir = `${tempRoot()}/pos`
    const a = holder(dir, 500)
    await a.waitFor((l) => 'ready' in l)
    const debug: string[] = []
    const logger = { ...silentLogger, debug: (m: string) => debug.push(m) }
    const opening = openMeshInstance({ dir, lockTimeoutMs: 10_000, healthIntervalMs: 0, logger })
    // The first attempt ran synchronously: this process is now waiting.
    expect(debug).toContain('mesh directory held; waiting')
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

describe('taking a directory', () => {
  it('removes the files of claims whose process was killed in the middle, and only those', () => {
    const dir = `${tempRoot()}/leftovers`
    mkdirSync(dir, { recursive: true })
    // A process that has exited: its pid names no process now.
    const gone = spawnSync(process.execPath, ['-e', '0']).pid
    const old = (Date.now() - 5 * 60_000) / 1000
    const file = (name: string, oldFile: boolean) => {
      const path = join(dir, name)
      writeFileSync(path, '{')
      if (oldFile) utimesSync(path, old, old)
      return path
    }
    const deadTmp = file(`${OWNER_FILE}.${gone}.k3j9.tmp`, true)
    const deadAside = file(`${OWNER_FILE}.stale-${gone}-0`, true)
    // A claim in progress (a moment old), and one by a live process: kept.
    const fresh = file(`${OWNER_FILE}.${gone}.a1b2.tmp`, false)
    const live = file(`${OWNER_FILE}.${process.ppid}.z9.tmp`, true)
    const unrelated = file('notes.tmp', true)
    const lock = DirectoryLock.tryAcquire(dir)
    expect(lock).toBeDefined()
    lock?.release()
    expect([deadTmp, deadAside].filter(existsSync)).toEqual([])
    expect([fresh, live, unrelated].filter(existsSync)).toEqual([fresh, live, unrelated])
  })
})
