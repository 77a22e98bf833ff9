import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { openMeshInstance } from '../../src/index.js'
import type { MeshEngine } from '../../src/instance/mesh-engine.js'
import { readOwner } from '../../src/instance/owner.js'
import type { InstanceHealth } from '../../src/instance/types.js'
import { silentLogger } from '../../src/logger.js'
import { type Child, HOLDER, removeTempRoots, spawnFixture, tempRoot } from './helpers.js'

const children: Child[] = []
afterEach(async () => {
  for (const c of children.splice(0)) await c.kill()
  removeTempRoots()
})

describe('health monitoring', () => {
  it('emits health periodically with the lock, size and handles', async () => {
    const dir = `${tempRoot()}/pos`
    await using inst = await openMeshInstance({ dir, healthIntervalMs: 20 })
    await inst.store.upsert('items', [{ _id: 'a' }])
    const health = await new Promise<InstanceHealth>((resolve) => {
      const off = inst.on('health', (h) => {
        off()
        resolve(h)
      })
    })
    expect(health).toMatchObject({
      dir: inst.dir,
      engine: 'builtin',
      lock: { held: true, mode: 'kernel', owner: { pid: process.pid } },
      storeOpen: true,
      handles: 1,
    })
    expect(health.sizeBytes).toBeGreaterThan(0)
    expect(health.lastError).toBeUndefined()
  })

  it('reports lock-lost once when the lock file is replaced under it', async () => {
    const dir = `${tempRoot()}/pos`
    const inst = await openMeshInstance({ dir, healthIntervalMs: 20 })
    const lost: { reason: string }[] = []
    const first = new Promise<void>((resolve) =>
      inst.on('lock-lost', (e) => {
        lost.push(e)
        resolve()
      }),
    )
    // Someone deletes the lock file: another process could now lock a new file at that path.
    rmSync(join(inst.dir, 'meshmirror.lock'))
    writeFileSync(join(inst.dir, 'meshmirror.lock'), '')
    await first
    const h = await inst.health()
    expect(h.lock.held).toBe(false)
    expect(h.lock.lostReason).toMatch(/meshmirror.lock was replaced/)
    expect(h.lastError).toMatch(/no longer held/)
    expect(lost).toHaveLength(1)
    await inst.close()
  })

  it('in heartbeat mode, reports a directory removed under it without crashing the process', async () => {
    const dir = `${tempRoot()}/pos`
    const inst = await openMeshInstance({
      dir,
      lock: { mode: 'heartbeat', heartbeatMs: 10, staleMs: 20 },
      healthIntervalMs: 0,
    })
    const lost = new Promise<{ reason: string }>((resolve) => inst.on('lock-lost', resolve))
    rmSync(inst.dir, { recursive: true, force: true })
    expect((await lost).reason).toMatch(/cannot be written/)
    await inst.close()
  })

  it('writes a removed owner record again, and says so', async () => {
    const dir = `${tempRoot()}/pos`
    await using inst = await openMeshInstance({ dir, healthIntervalMs: 0 })
    rmSync(join(inst.dir, 'meshmirror.owner.json'))
    const h = await inst.health()
    expect(h.lock.held).toBe(true)
    expect(h.lastError).toMatch(/written again/)
    expect(readOwner(inst.dir)).toMatchObject({ pid: process.pid, acquiredAt: h.lock.owner.acquiredAt })
  })

  it('survives a listener that throws, recording it', async () => {
    const dir = `${tempRoot()}/pos`
    await using inst = await openMeshInstance({ dir, healthIntervalMs: 10 })
    inst.on('health', () => {
      throw new Error('listener bug')
    })
    const error = await new Promise<{ message: string }>((resolve) => inst.on('error', resolve))
    expect(error.message).toMatch(/listener bug/)
    expect((await inst.health()).lastError).toMatch(/listener bug/)
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

describe('shutdown on beforeExit', () => {
  it('closes cleanly when the event loop empties', async () => {
    const dir = `${tempRoot()}/pos`
    const a = spawnFixture(HOLDER, [dir, '5', '--signals', '--exit'])
    children.push(a)
    await a.waitFor((l) => 'closed' in l)
    expect(await a.exited).toBe(0)
    expect(readOwner(dir)).toBeUndefined()
  })
})

describe('strategies and engines', () => {
  it("'unique' opens a fresh per-run directory each time, and warns", async () => {
    const root = tempRoot()
    const warnings: string[] = []
    const logger = { ...silentLogger, warn: (m: string) => warnings.push(m) }
    await using a = await openMeshInstance({ dir: `${root}/pos`, strategy: 'unique', logger, healthIntervalMs: 0 })
    await using b = await openMeshInstance({ dir: `${root}/pos`, strategy: 'unique', logger, healthIntervalMs: 0 })
    expect(a.dir).not.toBe(b.dir)
    for (const i of [a, b]) {
      expect(i.dir).toMatch(new RegExp(`^${root}/pos_\\d{8}_\\d{6}_${process.pid}_[0-9a-f]{8}$`))
      expect(i.strategy).toBe('unique')
      expect(i.fallback).toBeUndefined()
    }
    expect(warnings).toHaveLength(2)
    expect(warnings[0]).toMatch(/not visible/)
  })

  it('locks and shares directories of another engine the same way', async () => {
    const dir = `${tempRoot()}/notes`
    let opens = 0
    const engine: MeshEngine<{ file: string; close(): Promise<void> }> = {
      name: 'notes',
      isMeshDir: (d) => existsSync(`${d}/notes.txt`),
      async open(d) {
        opens++
        writeFileSync(`${d}/notes.txt`, 'open')
        return { file: `${d}/notes.txt`, close: async () => writeFileSync(`${d}/notes.txt`, 'closed') }
      },
    }
    const a = await openMeshInstance({ dir, engine, healthIntervalMs: 0 })
    const b = await openMeshInstance({ dir, engine, healthIntervalMs: 0 })
    expect(opens).toBe(1)
    expect(b.store).toBe(a.store)
    expect((await a.health()).engine).toBe('notes')
    await a.close()
    expect(readFileSync(a.store.file, 'utf8')).toBe('open')
    await b.close()
    expect(readFileSync(a.store.file, 'utf8')).toBe('closed')
    expect(readOwner(dir)).toBeUndefined()
  })
})

describe('wrong input', () => {
  it('rejects a file where a directory is expected, and bad options, creating nothing', async () => {
    const root = tempRoot()
    writeFileSync(`${root}/file`, 'x')
    await expect(openMeshInstance({ dir: `${root}/file` })).rejects.toMatchObject({
      code: 'DIRECTORY_UNUSABLE',
      message: expect.stringMatching(/is a file|not a directory/),
    })
    await expect(openMeshInstance({ dir: `${root}/file/sub` })).rejects.toMatchObject({ code: 'DIRECTORY_UNUSABLE' })
    const target = `${root}/pos`
    const bad: Record<string, unknown>[] = [
      { dir: '' },
      { dir: target, strategy: 'weird' },
      { dir: target, onLocked: 'retry' },
      { dir: target, lockTimeoutMs: -1 },
      { dir: target, lock: { mode: 'flock' } },
      { dir: target, lock: { heartbeatMs: 1000, staleMs: 1500 } },
      { dir: target, migrateFrom: 'everything' },
      { dir: target, cleanup: { olderThanMs: -5 } },
      { dir: target, engine: { name: 'x' } },
    ]
    for (const options of bad) {
      await expect(openMeshInstance(options as never)).rejects.toMatchObject({ code: 'INVALID_OPTIONS' })
    }
    expect(existsSync(target)).toBe(false)
    expect(readFileSync(`${root}/file`, 'utf8')).toBe('x')
  })
})
