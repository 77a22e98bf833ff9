import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, expect, it } from 'vitest'
import { type LongTransaction, openSqliteRepository, type SqliteRepository } from '../../src/index.js'
import { counter, counterAdapter } from './helpers/counter-model.js'
import { openNode } from './helpers/node.js'
import { remoteSite } from './helpers/remote.js'
import { runFixture, tempDirs, waitFor } from './helpers/wait.js'

const dirs = tempDirs()
let repo: SqliteRepository | undefined

const closers: (() => Promise<unknown>)[] = []

afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c()
  await repo?.close()
  repo = undefined
  dirs.cleanup()
})

/** A repository over a fresh WAL database holding one table, `items` (closed after the test). */
async function openItems(
  name: string,
  options: { longTransactionMs?: number } = {},
): Promise<{ file: string; repository: SqliteRepository }> {
  const file = join(dirs.make(name), 'app.db')
  const db = new Database(file)
  db.pragma('journal_mode = WAL')
  db.exec('CREATE TABLE items (id TEXT PRIMARY KEY, v INTEGER NOT NULL)')
  db.close()
  const repository = await openSqliteRepository({ file, models: [{ name: 'items' }], ...options })
  repo = repository
  return { file, repository }
}

/** Holds the thread (and so the write lock, inside a transaction) for `ms`, as a slow apply on a loaded machine does. */
function spin(ms: number): void {
  const until = performance.now() + ms
  while (performance.now() < until) {
    // busy
  }
}

it('leaves the write lock free now and then during back-to-back transactions, so an app waiting on its busy timeout gets in', async () => {
  const { file, repository: r } = await openItems('lock')
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
  expect(r.stats().lockPauses).toBeGreaterThan(0)
}, 60_000)

it('never makes a transaction now and then wait for the app: the lock is free most of the time', async () => {
  const { repository: r } = await openItems('lock')
  // One short transaction every 100 ms for longer than a second: live changes arriving one by one.
  for (let n = 0; n < 15; n++) {
    await r.transaction((tx) => tx.upsert('items', [{ id: `i${n}`, v: n }]))
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  expect(r.stats()).toMatchObject({ transactions: 15, lockPauses: 0 })
})

it('reports a transaction that held the write lock longer than longTransactionMs, with where the time went', async () => {
  const { repository: r } = await openItems('long', { longTransactionMs: 50 })
  const seen: LongTransaction[] = []
  r.on('longTransaction', (t) => seen.push(t))
  // Quick transactions are not reported.
  for (let i = 0; i < 5; i++) await r.upsert('items', [{ id: `q${i}`, v: i }])
  expect(seen).toEqual([])
  // One working on the CPU, and one waiting on something else while holding the lock.
  await r.transaction(async (tx) => {
    spin(80)
    await tx.upsert('items', [{ id: 'cpu', v: 1 }])
  })
  await r.transaction(async (tx) => {
    await tx.upsert('items', [{ id: 'idle', v: 2 }])
    await new Promise((resolve) => setTimeout(resolve, 80))
  })
  expect(seen).toHaveLength(2)
  const [cpu, idle] = seen as [LongTransaction, LongTransaction]
  for (const t of seen) {
    expect(t).toMatchObject({ origin: 'local' })
    expect(t.heldMs).toBeGreaterThanOrEqual(50)
    expect(t.commitMs).toBeLessThanOrEqual(t.heldMs)
    expect(t.monotonicMs).toBeGreaterThan(0)
  }
  expect(cpu.cpuMs).toBeGreaterThan(0)
  expect(idle.cpuMs).toBeLessThan(idle.heldMs)
  const stats = r.stats()
  expect(stats.longTransactions).toBe(2)
  expect(stats.longestHoldMs).toBeGreaterThanOrEqual(Math.max(cpu.heldMs, idle.heldMs) - 1)
})

it('shows long holds of the write lock by received batches in the bridge: event, metrics and a warning', async () => {
  const warnings: string[] = []
  const n = await openNode(dirs.make('b'), {
    longTransactionMs: 0,
    logger: { debug() {}, info() {}, error() {}, warn: (m: string) => warnings.push(m) },
  })
  closers.push(() => n.close())
  const seen: LongTransaction[] = []
  n.sync.on('longTransaction', (t) => seen.push(t))
  const site = await remoteSite('builtin', n.mesh, dirs.make('site'))
  closers.push(() => site.close())
  await site.upsert(
    'counters',
    Array.from({ length: 20 }, (_, i) => counterAdapter.toDocument(counter(i))),
  )
  await waitFor(() => n.sync.metrics().applied === 20, { message: '20 rows applied' })
  const remote = seen.filter((t) => t.origin === 'remote')
  expect(remote.length).toBeGreaterThan(0)
  expect(remote.reduce((sum, t) => sum + (t.records ?? 0), 0)).toBeGreaterThanOrEqual(20)
  expect(n.sync.metrics().longTransactions.count).toBeGreaterThanOrEqual(seen.length)
  expect(warnings.some((w) => w.startsWith("held the database's write lock for"))).toBe(true)
})
