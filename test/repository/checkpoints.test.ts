import { existsSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, expect, it, vi } from 'vitest'
import { MeshmirrorError, openSqliteRepository, type SqliteRepository } from '../../src/index.js'
import { runFixture, tempDirs } from '../bridge/helpers/wait.js'

const dirs = tempDirs()
const open: SqliteRepository[] = []

afterEach(async () => {
  for (const r of open.splice(0)) await r.close()
  dirs.cleanup()
})

/** A fresh database with a mirrored table, `items`, and one the app keeps to itself, `app_log`. */
function appDatabase(journal: 'wal' | 'delete' = 'wal'): string {
  const file = join(dirs.make('app-ckpt'), 'app.db')
  const db = new Database(file)
  db.pragma(`journal_mode = ${journal}`)
  db.exec('CREATE TABLE items (id TEXT PRIMARY KEY, v INTEGER NOT NULL, body TEXT)')
  db.exec('CREATE TABLE app_log (n INTEGER PRIMARY KEY, body TEXT NOT NULL)')
  db.close()
  return file
}

async function repository(file: string, checkpoints?: 'background' | 'inline'): Promise<SqliteRepository> {
  const r = await openSqliteRepository({ file, models: [{ name: 'items' }], ...(checkpoints ? { checkpoints } : {}) })
  open.push(r)
  return r
}

/**
 * Single-row remote-origin transactions of 3 KB rows, as received changes
 * arrive one by one (400 are about 1,500 WAL pages); `n` of them, and more
 * while `until` is pending. Returns how many.
 */
async function apply(r: SqliteRepository, n: number, until?: Promise<unknown>): Promise<number> {
  let going = until !== undefined
  until?.finally(() => {
    going = false
  })
  let i = 0
  for (; i < n || going; i++) {
    await r.transaction((tx) => tx.upsert('items', [{ id: `mesh-${i}`, v: i, body: 'x'.repeat(3000) }]), {
      origin: 'remote',
    })
    if (i % 10 === 0) await new Promise((resolve) => setImmediate(resolve))
  }
  return i
}

const count = (file: string, table: string): number => {
  const db = new Database(file, { readonly: true })
  try {
    return db.prepare(`SELECT count(*) FROM ${table}`).pluck().get() as number
  } finally {
    db.close()
  }
}

it('checkpoints in a worker while an app in another process writes to the same file; nothing is lost', async () => {
  const file = appDatabase()
  const r = await repository(file)
  const app = runFixture('app-writer', [file, '300'])
  await app.line((l) => l === 'started', 30_000)
  const done = app.line((l) => l.startsWith('done'), 60_000)
  const applied = await apply(r, 400, done)
  expect(await app.exited).toBe(0)
  // The app's busy timeout covered every wait for the lock: no SQLITE_BUSY reached it.
  expect(await done).toBe('done 300 0')
  await vi.waitFor(() => expect(r.stats().backgroundCheckpoints).toBeGreaterThan(0), { timeout: 10_000 })
  await r.close()
  // The worker's connection closed before the writer's, the last one on the file: it copied the WAL and removed it.
  expect(existsSync(`${file}-wal`)).toBe(false)
  const db = new Database(file, { readonly: true })
  expect(db.pragma('integrity_check', { simple: true })).toBe('ok')
  db.close()
  expect(count(file, 'items')).toBe(applied + 300)
  expect(count(file, 'app_log')).toBe(300)
  // Reopened, the repository reads the same rows.
  const again = await repository(file)
  expect(await again.transaction(async (tx) => (await tx.get('items', `mesh-${applied - 1}`))?.v)).toBe(applied - 1)
}, 90_000)

it('checkpoints in the worker for a database opened through a symbolic link', async () => {
  const file = appDatabase()
  // The app's data directory links to the file elsewhere: SQLite keeps the WAL beside the file itself.
  const link = join(dirs.make('app-link'), 'till.db')
  symlinkSync(file, link)
  const r = await repository(link)
  // Rounds of commits a little apart, as a till's: the checkpointer looks at the WAL between commits. Through
  // the link, before it was followed, it never found the WAL and left every checkpoint to the event loop.
  for (let round = 0; round < 100 && r.stats().backgroundCheckpoints === 0; round++) {
    await apply(r, 100)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  expect(r.stats().backgroundCheckpoints).toBeGreaterThan(0)
  await r.close()
  expect(count(file, 'items')).toBe(100)
}, 60_000)

it("stay on the event loop with checkpoints: 'inline'", async () => {
  const file = appDatabase()
  const r = await repository(file, 'inline')
  await apply(r, 400)
  expect(r.stats().backgroundCheckpoints).toBe(0)
  await r.close()
  expect(count(file, 'items')).toBe(400)
}, 60_000)

it('starts no worker for a database kept out of WAL mode', async () => {
  const file = appDatabase('delete')
  const r = await openSqliteRepository({ file, models: [{ name: 'items' }], journalMode: 'keep' })
  open.push(r)
  await apply(r, 50)
  expect(r.stats().backgroundCheckpoints).toBe(0)
  await r.close()
  expect(existsSync(`${file}-wal`)).toBe(false)
  expect(count(file, 'items')).toBe(50)
})

it('refuses an unknown checkpoints setting', async () => {
  const error = await repository(appDatabase(), 'later' as 'inline').catch((e) => e)
  expect(error).toBeInstanceOf(MeshmirrorError)
  expect(error.code).toBe('INVALID_OPTIONS')
})
