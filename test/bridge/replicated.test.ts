import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { COUNTERS_DDL, counter } from './helpers/counter-model.js'
import { type Fixture, runFixture, tempDirs, waitFor } from './helpers/wait.js'

const dirs = tempDirs()
const cleanup: (() => unknown)[] = []

afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
  dirs.cleanup()
})

function till(dir: string, ...args: string[]): Fixture {
  const child = runFixture('replicated-node', [dir, ...args])
  cleanup.push(async () => {
    if (child.child.exitCode === null) child.child.kill('SIGKILL')
    await child.exited
  })
  return child
}

function appDb(dir: string): Database.Database {
  const db = new Database(join(dir, 'app.db'))
  db.pragma('busy_timeout = 10000')
  db.exec(COUNTERS_DDL)
  cleanup.push(() => db.close())
  return db
}

const snapshot = (db: Database.Database) => JSON.stringify(db.prepare('SELECT * FROM counters ORDER BY id').all())

describe('two tills in two processes, replicated over WebSocket', () => {
  it("mirror each other's raw SQL writes, including deletes, and survive a restart", async () => {
    const dirA = dirs.make('till-a')
    const dirB = dirs.make('till-b')
    const a = till(dirA, 'listen')
    const port = Number((await a.line((l) => l.startsWith('port '))).split(' ')[1])
    await a.line((l) => l === 'live')
    let b = till(dirB, 'dial', `ws://127.0.0.1:${port}`)
    await b.line((l) => l === 'live')
    const dbA = appDb(dirA)
    const dbB = appDb(dirB)
    const insert = (db: Database.Database, from: number, to: number) => {
      const stmt = db.prepare(
        'INSERT INTO counters (id, branch_id, business_id, receipt_type, tot_rcpt_no, cur_rcpt_no, invc_no, bhf_id, last_touched, created_at) VALUES (@id, @branch_id, @business_id, @receipt_type, @tot_rcpt_no, @cur_rcpt_no, @invc_no, @bhf_id, @last_touched, @created_at)',
      )
      db.transaction(() => {
        for (let i = from; i < to; i++) stmt.run(counter(i))
      })()
    }
    insert(dbA, 0, 200)
    insert(dbB, 200, 300)
    dbB.exec("UPDATE counters SET cur_rcpt_no = -1 WHERE id = 'c000250'")
    await waitFor(
      () =>
        snapshot(dbA) === snapshot(dbB) &&
        (dbA.prepare('SELECT count(*) FROM counters').pluck().get() as number) === 300,
      {
        timeout: 30_000,
        message: 'both tills holding 300 rows',
      },
    )
    dbA.exec("DELETE FROM counters WHERE id < 'c000010'")
    dbB.exec("UPDATE counters SET invc_no = 7 WHERE id = 'c000100'")
    await waitFor(
      () =>
        snapshot(dbA) === snapshot(dbB) &&
        (dbB.prepare('SELECT count(*) FROM counters').pluck().get() as number) === 290,
      {
        timeout: 30_000,
        message: 'delete and update mirrored',
      },
    )

    // B stops; A keeps selling; B comes back and catches up.
    b.child.kill('SIGTERM')
    await b.line((l) => l === 'closed')
    dbA.exec("UPDATE counters SET cur_rcpt_no = cur_rcpt_no + 1000 WHERE id < 'c000050'")
    insert(dbA, 300, 320)
    b = till(dirB, 'dial', `ws://127.0.0.1:${port}`)
    await b.line((l) => l === 'live')
    await waitFor(() => snapshot(dbA) === snapshot(dbB), { timeout: 30_000, message: 'B caught up' })
    expect(dbB.prepare('SELECT count(*) FROM counters').pluck().get()).toBe(310)
    expect(a.stderr() + b.stderr()).not.toMatch(/sync error|database is locked/)
  }, 60_000)
})
