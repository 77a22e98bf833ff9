import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterEach, describe, expect, it } from 'vitest'
import { DITTO_LOCK_FILE, openDittoMesh, openDittoStore } from '../../src/ditto/index.js'
import { LockHeldError } from '../../src/errors.js'
import { OWNER_FILE } from '../../src/instance/owner.js'
import { type Child, removeTempDirs, spawnFixture, tempDir } from './helpers.js'

const children: Child[] = []
afterEach(async () => {
  for (const c of children.splice(0)) await c.kill()
  removeTempDirs()
})

function fixture(name: string, args: string[]): Child {
  const c = spawnFixture(name, args)
  children.push(c)
  return c
}

/**
 * Runs `fn` beside a job of `steps` timer turns of 10 ms each, and counts the
 * turns that ran before `fn` settled. All of them run only if the event loop
 * keeps serving other work while `fn` waits; a loop blocked by `fn` (as
 * Ditto's own synchronous lock retry would, 1 s per open) lets through one
 * turn per blocking call at most.
 */
async function alongside<T>(fn: () => Promise<T>, steps: number): Promise<{ error: unknown; turns: number }> {
  let settled = false
  let turns = 0
  const job = (async () => {
    for (let i = 0; i < steps && !settled; i++) {
      await sleep(10)
      if (!settled) turns++
    }
  })()
  let error: unknown
  try {
    await fn()
  } catch (e) {
    error = e
  } finally {
    settled = true
  }
  await job
  return { error, turns }
}

describe('a Ditto directory held by another process', () => {
  it('a plain Ditto holder: LOCK_HELD names its pid, the event loop keeps ticking; after it dies the open succeeds', async () => {
    const dir = tempDir()
    const holder = fixture('plain-holder.ts', [dir])
    const { held } = await holder.waitFor((l) => typeof l.held === 'number')
    const { error, turns } = await alongside(
      () => openDittoMesh({ dir, lockTimeoutMs: 1_500, healthIntervalMs: 0 }),
      20,
    )
    expect(error).toBeInstanceOf(LockHeldError)
    expect((error as LockHeldError).code).toBe('LOCK_HELD')
    expect((error as LockHeldError).holder?.pid).toBe(held)
    expect((error as LockHeldError).message).toContain(String(held))
    // Ditto's native retry would block for 1 s per open; ours waits asynchronously, so other work goes on meanwhile.
    expect(turns).toBe(20)

    await holder.kill()
    const inst = await openDittoMesh({ dir, lockTimeoutMs: 5_000, healthIntervalMs: 0 })
    try {
      expect(await inst.store.get('items', 'from-plain')).toEqual({ _id: 'from-plain', v: 1 })
    } finally {
      await inst.close()
    }
  })

  it('a meshmirror holder: LOCK_HELD from the instance lock, with its pid', async () => {
    const dir = tempDir()
    const holder = fixture('mesh-process.ts', [dir, 'hold'])
    const { held } = await holder.waitFor((l) => typeof l.held === 'number')
    const error = await openDittoMesh({ dir, onLocked: 'fail', healthIntervalMs: 0 }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(LockHeldError)
    expect((error as LockHeldError).holder?.pid).toBe(held)
  })
})

describe('one process', () => {
  it('a second open of the same directory returns the same store; the last close closes Ditto', async () => {
    const dir = tempDir()
    const a = await openDittoMesh({ dir, healthIntervalMs: 0 })
    const b = await openDittoMesh({ dir: join(dir, '.'), healthIntervalMs: 0 })
    expect(b.store).toBe(a.store)
    await a.store.upsert('c', [{ _id: '1' }])
    await a.close()
    expect(await b.store.get('c', '1')).toEqual({ _id: '1' })
    expect((await b.health()).handles).toBe(1)
    await b.close()
    expect(a.store.ditto.isClosed).toBe(true)
  })

  it('a reopen right after an un-awaited close (hot reload) waits for it instead of failing', async () => {
    const dir = tempDir()
    const first = await openDittoStore({ dir })
    await first.upsert('c', [{ _id: 'kept' }])
    void first.close()
    const second = await openDittoStore({ dir, lockTimeoutMs: 0 })
    try {
      expect(await second.get('c', 'kept')).toEqual({ _id: 'kept' })
    } finally {
      await second.close()
    }
  })

  it('a second low-level open while the first is open is LOCK_HELD at once, naming this process', async () => {
    const dir = tempDir()
    const first = await openDittoStore({ dir })
    try {
      const error = await openDittoStore({ dir }).catch((e: unknown) => e)
      expect((error as LockHeldError).holder?.pid).toBe(process.pid)
    } finally {
      await first.close()
    }
  })

  it('a process that exits with live observers (no close) exits with code 0, not SIGABRT', async () => {
    const dir = tempDir()
    const child = fixture('mesh-process.ts', [dir, 'observe'])
    expect(await child.waitFor((l) => typeof l.observed === 'number')).toMatchObject({ observers: 2 })
    expect(await child.exited).toEqual({ code: 0, signal: null })
    // Quiet by default: no Ditto log lines.
    expect(child.stderr()).not.toMatch(/ERROR|INFO|WARN /)
    expect(existsSync(join(dir, DITTO_LOCK_FILE))).toBe(true)
  })

  it('SIGTERM with handleSignals closes Ditto (observers live) and releases the directory', async () => {
    const dir = tempDir()
    const child = fixture('mesh-process.ts', [dir, 'serve'])
    await child.waitFor((l) => typeof l.serving === 'number')
    expect(existsSync(join(dir, OWNER_FILE))).toBe(true)
    child.process.kill('SIGTERM')
    expect(await child.exited).toEqual({ code: null, signal: 'SIGTERM' })
    // A clean shutdown removes the owner record (a killed process leaves it behind).
    expect(existsSync(join(dir, OWNER_FILE))).toBe(false)
    expect(child.stderr()).not.toMatch(/abort|panick/i)
    // Released: no wait for the lock, and the write is there.
    const store = await openDittoStore({ dir, lockTimeoutMs: 0 })
    try {
      expect(await store.get('items', 'served')).toEqual({ _id: 'served', v: 2 })
    } finally {
      await store.close()
    }
  })

  it('a process that forgets close() exits with code 0 once its observers are cancelled', async () => {
    const child = fixture('mesh-process.ts', [tempDir(), 'forget'])
    await child.waitFor((l) => typeof l.observed === 'number')
    expect(await child.exited).toEqual({ code: 0, signal: null })
  })
})
