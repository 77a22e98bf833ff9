import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { silentLogger } from '../logger.js'
import { checkpointThreads, WalCheckpointer } from './wal-checkpointer.js'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

function openWriter(): { file: string; writer: Database.Database } {
  const dir = mkdtempSync(join(tmpdir(), 'mm-ckpt-'))
  dirs.push(dir)
  const file = join(dir, 'db.sqlite')
  const writer = new Database(file)
  writer.pragma('journal_mode = WAL')
  writer.pragma('synchronous = normal')
  writer.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)')
  return { file, writer }
}

/** The largest the WAL has been since the file was created, in frames, by its size. */
function walFileFrames(file: string): number {
  const size = statSync(`${file}-wal`, { throwIfNoEntry: false })?.size ?? 0
  return Math.max(Math.floor((size - 32) / (4096 + 24)), 0)
}

/** Commits `n` rows of about two pages each, one per turn of the event loop; returns the largest WAL seen after a commit. */
async function commit(
  writer: Database.Database,
  file: string,
  checkpointer: WalCheckpointer,
  n: number,
): Promise<number> {
  const insert = writer.prepare('INSERT INTO t (body) VALUES (?)')
  let largest = 0
  for (let i = 0; i < n; i++) {
    insert.run('x'.repeat(6000))
    checkpointer.committed()
    largest = Math.max(largest, walFileFrames(file))
    await sleep(1)
  }
  return largest
}

describe('WAL checkpoints in a worker', () => {
  it('runs the checkpoints in the worker while the writer only commits, and the WAL starts over', async () => {
    const { file, writer } = openWriter()
    const checkpointer = new WalCheckpointer({ file, writer, logger: silentLogger, pages: 100, backstopPages: 2000 })
    // The writer checkpoints only past 2000 pages.
    expect(writer.pragma('wal_autocheckpoint', { simple: true })).toBe(2000)
    // About 3 pages a row: some 1,500 pages, under the writer's threshold.
    expect(await commit(writer, file, checkpointer, 500)).toBeLessThan(2000)
    expect(checkpointer.stats().checkpoints).toBeGreaterThan(0)
    // Once the worker has copied the whole WAL, the next commit starts it over, from its first frame.
    await vi.waitFor(() => expect(checkpointer.busy).toBe(false), { timeout: 10_000 })
    checkpointer.request()
    await vi.waitFor(() => expect(checkpointer.busy).toBe(false), { timeout: 10_000 })
    writer.prepare('INSERT INTO t (body) VALUES (?)').run('next')
    const other = new Database(file)
    const [wal] = other.pragma('wal_checkpoint(PASSIVE)') as { log: number }[]
    other.close()
    expect(wal!.log).toBeLessThan(10)
    await checkpointer.close()
    writer.close()
  })

  it('follows a stream of commits on its own once asked, and goes quiet when they stop', async () => {
    const { file, writer } = openWriter()
    const checkpointer = new WalCheckpointer({ file, writer, logger: silentLogger, pages: 100, backstopPages: 100_000 })
    const insert = writer.prepare('INSERT INTO t (body) VALUES (?)')
    for (let i = 0; i < 50; i++) insert.run('x'.repeat(6000))
    checkpointer.request()
    // Commits for about a second, never telling the checkpointer: the worker keeps checkpointing by itself.
    const until = performance.now() + 1000
    while (performance.now() < until) {
      insert.run('x'.repeat(6000))
      await sleep(2)
    }
    expect(checkpointer.stats().checkpoints).toBeGreaterThan(3)
    // Commits stopped: once a checkpoint finds nothing new, the worker waits for the next request.
    await vi.waitFor(() => expect(checkpointer.busy).toBe(false), { timeout: 10_000 })
    const settled = checkpointer.stats().checkpoints
    await sleep(500)
    expect(checkpointer.stats().checkpoints).toBe(settled)
    await checkpointer.close()
    writer.close()
  })

  it('asks the worker at once when commits stored about `pages` of rows, without waiting for the interval', async () => {
    const { file, writer } = openWriter()
    const checkpointer = new WalCheckpointer({ file, writer, logger: silentLogger, pages: 100, backstopPages: 2000 })
    // Starts the worker; after a checkpoint, the next one asked for by time waits at least 500 ms.
    await commit(writer, file, checkpointer, 60)
    await vi.waitFor(() => expect(checkpointer.busy).toBe(false), { timeout: 10_000 })
    checkpointer.request()
    await vi.waitFor(() => expect(checkpointer.busy).toBe(false), { timeout: 10_000 })
    const before = checkpointer.stats().checkpoints
    // Commits storing less than 100 pages of text in all do not ask.
    checkpointer.committed(50 * 4096)
    checkpointer.committed(40 * 4096)
    expect(checkpointer.busy).toBe(false)
    // The one that brings them past it does.
    checkpointer.committed(20 * 4096)
    expect(checkpointer.busy || checkpointer.stats().checkpoints > before).toBe(true)
    await vi.waitFor(() => expect(checkpointer.stats().checkpoints).toBeGreaterThan(before), { timeout: 10_000 })
    await checkpointer.close()
    writer.close()
  })

  it('serves every database of the process from one thread, stopped when the last one closes', async () => {
    const a = openWriter()
    const b = openWriter()
    const ca = new WalCheckpointer({ file: a.file, writer: a.writer, logger: silentLogger, pages: 50 })
    const cb = new WalCheckpointer({ file: b.file, writer: b.writer, logger: silentLogger, pages: 50 })
    await Promise.all([commit(a.writer, a.file, ca, 100), commit(b.writer, b.file, cb, 100)])
    await vi.waitFor(() => expect(ca.stats().checkpoints * cb.stats().checkpoints).toBeGreaterThan(0), {
      timeout: 10_000,
    })
    expect(checkpointThreads()).toBe(1)
    // One database closing leaves the other served.
    await ca.close()
    a.writer.close()
    expect(existsSync(`${a.file}-wal`)).toBe(false)
    await vi.waitFor(() => expect(cb.busy).toBe(false), { timeout: 10_000 })
    const before = cb.stats().checkpoints
    expect(cb.request()).toBe(true)
    await vi.waitFor(() => expect(cb.stats().checkpoints).toBeGreaterThan(before), { timeout: 10_000 })
    expect(cb.active).toBe(true)
    await cb.close()
    b.writer.close()
    // The last one closed: the thread stops, and the next database to need one starts another.
    expect(checkpointThreads()).toBe(0)
    const c = openWriter()
    const cc = new WalCheckpointer({ file: c.file, writer: c.writer, logger: silentLogger, pages: 50 })
    await commit(c.writer, c.file, cc, 100)
    await vi.waitFor(() => expect(cc.stats().checkpoints).toBeGreaterThan(0), { timeout: 10_000 })
    expect(checkpointThreads()).toBe(1)
    await cc.close()
    c.writer.close()
  })

  it('close waits for the worker to close its connection, so the writer closes last and removes the WAL', async () => {
    const { file, writer } = openWriter()
    const checkpointer = new WalCheckpointer({ file, writer, logger: silentLogger, pages: 50 })
    await commit(writer, file, checkpointer, 100)
    await vi.waitFor(() => expect(checkpointer.stats().checkpoints).toBeGreaterThan(0), { timeout: 10_000 })
    // While the writer commits, a checkpoint is asked for and close comes right after it.
    writer.prepare('INSERT INTO t (body) VALUES (?)').run('last')
    checkpointer.request()
    await checkpointer.close()
    expect(checkpointer.active).toBe(false)
    writer.close()
    expect(existsSync(`${file}-wal`)).toBe(false)
    const again = new Database(file)
    expect(again.prepare('SELECT count(*) FROM t').pluck().get()).toBe(101)
    again.close()
  })

  it('hands checkpoints back to the writer, with a warning, when the worker cannot run', async () => {
    const { file, writer } = openWriter()
    const warn = vi.fn()
    const checkpointer = new WalCheckpointer({
      file,
      writer,
      logger: { ...silentLogger, warn },
      pages: 50,
      driver: join(file, 'no-such-driver.js'),
    })
    await commit(writer, file, checkpointer, 60)
    await vi.waitFor(() => expect(checkpointer.active).toBe(false), { timeout: 10_000 })
    expect(warn).toHaveBeenCalledWith(expect.stringContaining('checkpoint worker'), expect.anything())
    expect(writer.pragma('wal_autocheckpoint', { simple: true })).toBe(1000)
    // SQLite's own checkpoints bound the WAL again: 1000 pages, and the few of the commit that crossed them.
    expect(await commit(writer, file, checkpointer, 600)).toBeLessThan(1010)
    expect(checkpointer.stats().checkpoints).toBe(0)
    await checkpointer.close()
    writer.close()
  })
})
