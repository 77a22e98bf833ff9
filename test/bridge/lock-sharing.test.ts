import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, expect, it } from 'vitest'
import { openSqliteRepository, type SqliteRepository } from '../../src/index.js'
import { runFixture, tempDirs } from './helpers/wait.js'

const dirs = tempDirs()
let repo: SqliteRepository | undefined

afterEach(async () => {
  await repo?.close()
  repo = undefined
  dirs.cleanup()
})

/** Holds the thread (and so the write lock, inside a transaction) for `ms`, as a slow apply on a loaded machine does. */
function spin(ms: number): void {
  const until = performance.now() + ms
  while (performance.now() < until) {
    // busy
  }
}

it('leaves the write lock free now and then during back-to-back transactions, so an app waiting on its busy timeout gets in', async () => {
  const file = join(dirs.make('lock'), 'app.db')
  const db = new Database(file)
  db.pragma('journal_mode = WAL')
  db.exec('CREATE TABLE items (id TEXT PRIMARY KEY, v INTEGER NOT NULL)')
  db.close()
  repo = await openSqliteRepository({ file, models: [{ name: 'items' }] })
  const r = repo
  // Transactions of 150 ms each, one right after the other, for 5 s: a long catch-up.
  let stop = false
  let n = 0
  const applying = (async () => {
    while (!stop) {
      await r.transaction(async (tx) => {
        spin(150)
        await tx.upsert('items', [{ id: `i${n}`, v: n }])
      })
      n++
      // The event loop turns between batches (I/O, timers), as in a peer: the lock is free for microseconds.
      await new Promise((resolve) => setImmediate(resolve))
    }
  })()
  // The app starts waiting in the middle of it, with a busy timeout of 2.5 s.
  await new Promise((resolve) => setTimeout(resolve, 500))
  const app = runFixture('one-write', [file, '2500'])
  const outcome = JSON.parse(await app.line(() => true, 30_000)) as { ok: boolean; waitedMs?: number; code?: string }
  await new Promise((resolve) => setTimeout(resolve, 500))
  stop = true
  await applying
  expect(await app.exited).toBe(0)
  expect(outcome).toMatchObject({ ok: true })
  expect(outcome.waitedMs).toBeLessThan(2500)
  expect(n).toBeGreaterThan(5)
}, 60_000)
