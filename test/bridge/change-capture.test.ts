import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { hasCode, openSqliteRepository, type SqliteRepository } from '../../src/index.js'
import { COUNTERS_DDL, counter, counterModel } from './helpers/counter-model.js'
import { runFixture, tempDirs, waitFor } from './helpers/wait.js'

const dirs = tempDirs()
const open: { close(): unknown }[] = []

afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close()
  dirs.cleanup()
})

function appDb(file: string, ddl = COUNTERS_DDL): Database.Database {
  const db = new Database(file)
  db.pragma('journal_mode = WAL')
  db.pragma('busy_timeout = 10000')
  db.exec(ddl)
  open.push(db)
  return db
}

async function repository(file: string): Promise<SqliteRepository> {
  const repo = await openSqliteRepository({ file, models: [counterModel] })
  open.push(repo)
  return repo
}

const insertSql = (i: number) => {
  const c = counter(i)
  return `INSERT INTO counters (id, branch_id, business_id, receipt_type, created_at) VALUES ('${c.id}', 1, 10, 'NS', '${c.created_at}')`
}

describe('change capture', () => {
  it('captures writes from the repository, another connection and another process', async () => {
    const file = join(dirs.make(), 'app.db')
    const app = appDb(file)
    const repo = await repository(file)
    await repo.setChangeCapture('counters', true)
    expect(repo.isCapturing('counters')).toBe(true)

    await repo.upsert('counters', [counter(1)])
    app.exec(insertSql(2))
    app.exec("UPDATE counters SET cur_rcpt_no = 5 WHERE id = 'c000002'")
    app.exec("UPDATE counters SET id = 'c000009' WHERE id = 'c000001'")
    app.exec("DELETE FROM counters WHERE id = 'c000002'")
    const child = runFixture('raw-sql', [file, insertSql(3)])
    expect(await child.exited).toBe(0)

    const changes = await repo.pendingChanges({ models: ['counters'], limit: 100 })
    expect(changes.map((c) => [c.id, c.op])).toEqual([
      ['c000001', 'upsert'],
      ['c000002', 'upsert'],
      ['c000002', 'upsert'],
      ['c000001', 'delete'],
      ['c000009', 'upsert'],
      ['c000002', 'delete'],
      ['c000003', 'upsert'],
    ])
    expect(changes.every((c) => c.model === 'counters' && c.at > Date.now() - 60_000)).toBe(true)
    expect(await repo.pendingChangeCount(['counters'])).toMatchObject({ count: 7 })
  })

  it('skips exactly the remote apply: a write from another process during it is still captured', async () => {
    const file = join(dirs.make(), 'app.db')
    appDb(file)
    const repo = await repository(file)
    await repo.setChangeCapture('counters', true)
    let child: ReturnType<typeof runFixture> | undefined
    await repo.transaction(
      async (tx) => {
        await tx.upsert('counters', [counter(1), counter(2)])
        // Another process tries to write while the apply holds the lock; it waits, then commits.
        child = runFixture('raw-sql', [file, insertSql(3)])
        await child.line((l) => l === 'begin')
        await tx.delete('counters', ['c000002'])
      },
      { origin: 'remote' },
    )
    expect(await child!.exited).toBe(0)
    const changes = await repo.pendingChanges({ models: ['counters'], limit: 100 })
    expect(changes.map((c) => c.id)).toEqual(['c000003'])
    expect(await repo.count('counters')).toBe(2)
    // The flag never outlives its transaction.
    expect(
      new Database(file, { readonly: true }).prepare('SELECT count(*) FROM _meshmirror_applying').pluck().get(),
    ).toBe(0)
  })

  it('leaves connections that know nothing of meshmirror working, and a remote apply uncaptured for them too', async () => {
    const file = join(dirs.make(), 'app.db')
    const app = appDb(file)
    const repo = await repository(file)
    await repo.setChangeCapture('counters', true)
    await repo.transaction(async (tx) => tx.upsert('counters', [counter(1)]), { origin: 'remote' })
    // A plain connection opened after the triggers exist: no functions registered, no temp tables.
    const plain = new Database(file)
    open.push(plain)
    plain.exec(insertSql(2))
    app.exec("UPDATE counters SET invc_no = 3 WHERE id = 'c000001'")
    const ids = (await repo.pendingChanges({ models: ['counters'], limit: 10 })).map((c) => c.id)
    expect(ids).toEqual(['c000002', 'c000001'])
  })

  it('acknowledges captured changes by position, keeping later ones', async () => {
    const file = join(dirs.make(), 'app.db')
    const app = appDb(file)
    const repo = await repository(file)
    await repo.setChangeCapture('counters', true)
    for (let i = 0; i < 5; i++) app.exec(insertSql(i))
    const first = await repo.pendingChanges({ models: ['counters'], limit: 3 })
    app.exec(insertSql(7))
    await repo.transaction(async (tx) => {
      expect([...(await tx.pendingIds('counters', ['c000000', 'c000004', 'zzz']))].sort()).toEqual([
        'c000000',
        'c000004',
      ])
      expect(await tx.acknowledge(first.at(-1)!.seq, ['counters'])).toBe(3)
    })
    const left = await repo.pendingChanges({ models: ['counters'], limit: 10 })
    expect(left.map((c) => c.id)).toEqual(['c000003', 'c000004', 'c000007'])
  })

  it('notices writes of other processes without being told', async () => {
    const file = join(dirs.make(), 'app.db')
    appDb(file)
    const repo = await openSqliteRepository({ file, models: [counterModel], pollIntervalMs: 5 })
    open.push(repo)
    await repo.setChangeCapture('counters', true)
    let calls = 0
    const off = repo.onChanges(() => calls++)
    const child = runFixture('raw-sql', [file, insertSql(1)])
    await child.exited
    await waitFor(() => calls > 0, { message: 'change notification' })
    off()
  })

  it('installs triggers once, and removes them and their entries when capture stops', async () => {
    const file = join(dirs.make(), 'app.db')
    const app = appDb(file)
    const repo = await repository(file)
    await repo.setChangeCapture('counters', true)
    const version = () => app.pragma('schema_version', { simple: true })
    const before = version()
    await repo.setChangeCapture('counters', true)
    const again = await openSqliteRepository({ file, models: [counterModel] })
    await again.setChangeCapture('counters', true)
    await again.close()
    expect(version()).toBe(before)
    app.exec(insertSql(1))
    await repo.setChangeCapture('counters', false)
    expect(repo.isCapturing('counters')).toBe(false)
    expect(await repo.pendingChangeCount(['counters'])).toMatchObject({ count: 0 })
    app.exec(insertSql(2))
    expect(await repo.pendingChangeCount(['counters'])).toMatchObject({ count: 0 })
  })
})

describe('SQLite repository', () => {
  it('uses an existing schema as it is, with conversions for booleans and JSON', async () => {
    const file = join(dirs.make(), 'app.db')
    appDb(
      file,
      'CREATE TABLE products (sku TEXT PRIMARY KEY, name TEXT, price REAL, active BOOLEAN, tags JSON, qty INTEGER)',
    )
    const repo = await openSqliteRepository({ file, models: [{ name: 'products' }] })
    open.push(repo)
    expect(repo.keyColumns('products')).toEqual(['sku'])
    await repo.upsert('products', [{ sku: 'a', name: 'Tea', price: 2.5, active: true, tags: ['hot'], qty: 3 }])
    expect(await repo.get('products', 'a')).toEqual({
      sku: 'a',
      name: 'Tea',
      price: 2.5,
      active: true,
      tags: ['hot'],
      qty: 3,
    })
    // Writing the same values changes nothing.
    expect(await repo.upsert('products', [{ sku: 'a', name: 'Tea', price: 2.5, active: true, tags: ['hot'] }])).toBe(0)
    expect(await repo.upsert('products', [{ sku: 'a', price: 3 }])).toBe(1)
    expect((await repo.get('products', 'a'))?.price).toBe(3)
    expect([...(await repo.getMany('products', ['a', 'b'])).keys()]).toEqual(['a'])
  })

  it('creates missing tables from declared columns and pages rows by key', async () => {
    const file = join(dirs.make(), 'app.db')
    const repo = await openSqliteRepository({
      file,
      models: [{ name: 'items', primaryKey: 'n', columns: { n: 'integer', label: 'text' } }],
    })
    open.push(repo)
    await repo.upsert(
      'items',
      Array.from({ length: 25 }, (_, i) => ({ n: i + 1, label: `#${i + 1}` })),
    )
    const first = await repo.scan('items', { limit: 10 })
    const next = await repo.scan('items', { after: String(first.at(-1)!.n), limit: 10 })
    expect(first.map((r) => r.n)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    expect(next[0]!.n).toBe(11)
    expect(await repo.count('items')).toBe(25)
    expect(await repo.countUnmirrored('items')).toBe(25)
    await repo.transaction(async (tx) =>
      tx.putSyncStates('items', [{ id: '2', hash: 'h', origin: 'local', doc: null }]),
    )
    expect((await repo.unmirrored('items', { limit: 3 })).map((r) => r.n)).toEqual([1, 3, 4])
  })

  it('refuses models that do not fit their tables, with messages that say what to do', async () => {
    const file = join(dirs.make(), 'app.db')
    appDb(
      file,
      `${COUNTERS_DDL}; CREATE TABLE nokey (a TEXT); CREATE TABLE pair (a TEXT, b TEXT, PRIMARY KEY (a, b)); CREATE TABLE t (id TEXT PRIMARY KEY)`,
    )
    const attempt = async (models: Parameters<typeof openSqliteRepository>[0]['models']) => {
      try {
        await (await openSqliteRepository({ file, models })).close()
        return undefined
      } catch (e) {
        return e
      }
    }
    const noKey = await attempt([{ name: 'nokey' }])
    expect(hasCode(noKey, 'INVALID_MODEL') && /no declared primary key/.test((noKey as Error).message)).toBe(true)
    expect(String(await attempt([{ name: 'pair', primaryKey: 'a' }]))).toMatch(/primary key is a, b/)
    expect(String(await attempt([{ name: 'pair', primaryKey: [] as string[] }]))).toMatch(
      /primaryKey must be a column name or a non-empty array/,
    )
    expect(String(await attempt([{ name: 'pair', primaryKey: ['b', 'a'] }]))).toMatch(/primary key is a, b/)
    expect(String(await attempt([{ name: 't', columns: { id: 'text', missing: 'integer' } }]))).toMatch(
      /column\(s\) missing .*ALTER TABLE/,
    )
    expect(String(await attempt([{ name: 'absent' }]))).toMatch(/does not exist/)
    expect(String(await attempt([{ name: 'bad-name' }]))).toMatch(/Invalid model name/)
    const repo = await repository(file)
    await expect(repo.upsert('counters', [{ id: 'x', nope: 1 }])).rejects.toThrow(/no column\(s\) nope/)
    await expect(repo.get('other', 'x')).rejects.toThrow(/Unknown model "other"/)
  })

  it('waits for a competing writer without blocking the event loop, and counts the retries', async () => {
    const file = join(dirs.make(), 'app.db')
    appDb(file)
    const repo = await repository(file)
    const holder = runFixture('hold-lock', [file, '600'])
    await holder.line((l) => l === 'locked')
    let ticks = 0
    const timer = setInterval(() => ticks++, 10)
    const busy: number[] = []
    repo.on('busy', (b) => busy.push(b.attempt))
    await repo.upsert('counters', [counter(1)])
    clearInterval(timer)
    expect(await holder.exited).toBe(0)
    expect(await repo.count('counters')).toBe(1)
    expect(busy.length).toBeGreaterThan(0)
    expect(repo.stats().busyRetries).toBe(busy.length)
    // The loop kept turning while the lock was held.
    expect(ticks).toBeGreaterThan(10)
  })
})
