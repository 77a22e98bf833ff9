import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { MeshmirrorError } from '../errors.js'
import { STORE_FILE } from './database.js'
import { openBuiltinStore } from './open-builtin-store.js'

const dirs: string[] = []
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mm-persist-'))
  dirs.push(dir)
  return dir
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

describe('close and reopen', () => {
  it('keeps documents, clocks, counters, tombstones, cursors, peers and the site id', async () => {
    const dir = tempDir()
    const other = await openBuiltinStore({ dir: tempDir(), siteId: 'other' })
    let mesh = await openBuiltinStore({ dir })
    const site = mesh.siteId
    await mesh.upsert('items', [
      { _id: 'a', name: 'tea', price: 3 },
      { _id: 'b', name: 'gone' },
    ])
    await mesh.increment('stock', 'tea', 'qty', 5)
    await mesh.remove('items', ['b'])
    const cursor = await mesh.currentCursor()
    await other.upsert('items', [{ _id: 'c', from: 'other' }])
    const chunk = await other.changesFor(await mesh.versionVector(), 0, 100)
    await mesh.applyRemote(chunk.changes, {
      from: other.siteId,
      cursor: chunk.cursor,
      versionVector: chunk.versionVector,
    })
    const vv = await mesh.versionVector()
    const stats = await mesh.stats()
    await mesh.close()

    mesh = await openBuiltinStore({ dir })
    expect(mesh.siteId).toBe(site)
    expect(await mesh.find({ collection: 'items' })).toEqual([
      { _id: 'a', name: 'tea', price: 3 },
      { _id: 'c', from: 'other' },
    ])
    expect(await mesh.versionVector()).toEqual(vv)
    expect(await mesh.peerCursor(other.siteId)).toBe(chunk.cursor)
    expect(await mesh.stats()).toMatchObject({ documents: 3, tombstones: 1, sequence: stats.sequence })
    // The cursor from before the reopen still works.
    const since = await mesh.changesSince(cursor, { collection: 'items' })
    expect(since.changed.map((d) => d._id)).toEqual(['c'])
    // Counters keep their per-site totals: increments merge with another site's.
    await mesh.increment('stock', 'tea', 'qty', 1)
    await other.applyRemote((await mesh.changesFor(await other.versionVector(), 0, 100)).changes)
    await other.increment('stock', 'tea', 'qty', 10)
    await mesh.applyRemote((await other.changesFor(await mesh.versionVector(), 0, 100)).changes)
    expect(await mesh.get('stock', 'tea')).toEqual({ _id: 'tea', qty: 16 })
    // Clocks survive: a new local write beats what was written before the reopen,
    // and the tombstone still hides the removed document from an old copy.
    await mesh.upsert('items', [{ _id: 'a', price: 4 }])
    expect(await mesh.get('items', 'a')).toEqual({ _id: 'a', name: 'tea', price: 4 })
    await other.applyRemote((await mesh.changesFor(await other.versionVector(), 0, 100)).changes)
    expect(await other.get('items', 'a')).toEqual({ _id: 'a', name: 'tea', price: 4 })
    expect(await other.get('items', 'b')).toBeUndefined()
    await mesh.close()
    await other.close()
  })

  it('refuses a different site id, a foreign SQLite file and a corrupt file, with codes', async () => {
    const dir = tempDir()
    await (await openBuiltinStore({ dir, siteId: 'till-1' })).close()
    await expect(openBuiltinStore({ dir, siteId: 'till-2' })).rejects.toMatchObject({ code: 'INVALID_OPTIONS' })

    const corrupt = tempDir()
    writeFileSync(join(corrupt, STORE_FILE), Buffer.alloc(8192, 7))
    const error = await openBuiltinStore({ dir: corrupt }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(MeshmirrorError)
    expect((error as MeshmirrorError).code).toBe('STORE_INCOMPATIBLE')

    const notADir = join(tempDir(), 'file')
    writeFileSync(notADir, 'x')
    await expect(openBuiltinStore({ dir: notADir })).rejects.toMatchObject({ code: 'DIRECTORY_UNUSABLE' })
  })
})

describe('a process killed mid-batch', () => {
  it('reopens with every batch either fully applied or absent', async () => {
    const dir = tempDir()
    const perBatch = 200
    const reported = new Set<number>()
    for (let round = 0; round < 3; round++) {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', 'test/fixtures/batch-writer.ts', dir, String(perBatch), String(round * 10_000)],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      )
      const target = 3 + Math.floor(Math.random() * 5)
      await waitForBatches(child, reported, target)
      child.kill('SIGKILL')
      await new Promise((resolve) => child.once('exit', resolve))
    }

    const mesh = await openBuiltinStore({ dir })
    const docs = await mesh.find({ collection: 'docs' })
    const perBatchCount = new Map<number, number>()
    for (const d of docs) perBatchCount.set(d.batch as number, (perBatchCount.get(d.batch as number) ?? 0) + 1)
    for (const [, n] of perBatchCount) expect(n).toBe(perBatch)
    for (const b of reported) expect(perBatchCount.get(b)).toBe(perBatch)
    // The counter incremented in the same transactions agrees with the batches that landed.
    expect((await mesh.get('counters', 'batches'))?.n).toBe(perBatchCount.size)
    expect(perBatchCount.size).toBeGreaterThanOrEqual(reported.size)
    await mesh.close()
  }, 60_000)
})

/** Collects batch numbers the child reports until it has reported `target` in this round. */
function waitForBatches(child: ChildProcess, reported: Set<number>, target: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let buffer = ''
    let count = 0
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString()
      const lines = buffer.split('\n')
      buffer = lines.pop() ?? ''
      for (const line of lines) {
        reported.add(Number(line))
        if (++count >= target) {
          child.stdout?.off('data', onData)
          resolve()
        }
      }
    }
    child.stdout?.on('data', onData)
    child.once('exit', (code) => reject(new Error(`writer exited early with ${code}`)))
  })
}
