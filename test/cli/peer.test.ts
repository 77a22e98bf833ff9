import { join } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { tempDirs, waitFor } from '../bridge/helpers/wait.js'
import { type CliProcess, runCli, startCli, writeConfig } from './helpers.js'

const dirs = tempDirs()
const running: CliProcess[] = []
const dbs: Database.Database[] = []

afterEach(async () => {
  for (const p of running.splice(0)) {
    if (p.child.exitCode === null) p.child.kill('SIGKILL')
    await p.exited
  }
  for (const db of dbs.splice(0)) db.close()
  dirs.cleanup()
})

/** The app's own database: tables made by plain SQL, some rows already there. */
const APP_DDL = `
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, vip BOOLEAN NOT NULL DEFAULT 0, notes TEXT);
CREATE TABLE products (sku TEXT PRIMARY KEY, name TEXT NOT NULL, price REAL NOT NULL, stock INTEGER NOT NULL);
CREATE TABLE audit_log (at TEXT, what TEXT);
`

function appDb(file: string, ddl = APP_DDL): Database.Database {
  const db = new Database(file)
  db.pragma('busy_timeout = 10000')
  if (ddl) db.exec(ddl)
  dbs.push(db)
  return db
}

const base = (db: string, mesh: string) => ({
  database: db,
  mesh: { dir: mesh },
  meshId: 'cli-test',
  secret: 'a test secret',
  tables: [
    { table: 'customers', keys: 'global', exclude: ['notes'] },
    { table: 'products', collection: 'items', id: 'sku', counters: ['stock'] },
  ],
})

const dump = (db: Database.Database, sql: string) => JSON.stringify(db.prepare(sql).all())

function parseEvent(line: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(line) as Record<string, unknown>
  } catch {
    return undefined
  }
}

describe('meshmirror peer', () => {
  it('mirrors an existing database to a second peer process, both ways, deletes included, and status reads it', async () => {
    const dir = dirs.make('peer')
    const a = appDb(join(dir, 'a.db'))
    a.prepare("INSERT INTO customers (id, name, email, vip, notes) VALUES (1, 'Ann', 'ann@x', 1, 'secret A')").run()
    a.prepare("INSERT INTO products VALUES ('tea', 'Tea', 2.5, 100), ('milk', 'Milk', 1.2, 40)").run()
    const b = appDb(join(dir, 'b.db'))
    b.prepare("INSERT INTO customers (id, name, notes) VALUES (2, 'Bob', 'secret B')").run()

    const pa = startCli([
      'peer',
      '--json',
      '--config',
      writeConfig(dir, 'a', { ...base('./a.db', './a-mesh'), listen: { host: '127.0.0.1', port: 0 } }),
    ])
    running.push(pa)
    const live = await pa.event('live')
    const port = live.port as number
    expect(port).toBeGreaterThan(0)
    const pb = startCli([
      'peer',
      '--json',
      '--config',
      writeConfig(dir, 'b', { ...base('./b.db', './b-mesh'), peers: [`ws://127.0.0.1:${port}`] }),
    ])
    running.push(pb)
    await pb.event('live')

    const customers = 'SELECT id, name, email, vip FROM customers ORDER BY id'
    const products = 'SELECT * FROM products ORDER BY sku'
    await waitFor(
      () =>
        dump(a, customers) === dump(b, customers) &&
        dump(b, products) === dump(a, products) &&
        (b.prepare('SELECT count(*) FROM customers').pluck().get() as number) === 2,
      { timeout: 20_000, message: 'first rows on both sides' },
    )
    // Excluded columns stay local.
    expect(b.prepare('SELECT notes FROM customers WHERE id = 1').pluck().get()).toBeNull()
    expect(a.prepare('SELECT notes FROM customers WHERE id = 2').pluck().get()).toBeNull()
    expect(a.prepare('SELECT notes FROM customers WHERE id = 1').pluck().get()).toBe('secret A')

    // Both directions, at once: inserts, updates, deletes, and concurrent stock decrements.
    a.prepare("INSERT INTO customers (id, name) VALUES (3, 'Cid')").run()
    a.prepare("UPDATE products SET stock = stock - 5 WHERE sku = 'tea'").run()
    b.prepare("UPDATE products SET stock = stock - 7 WHERE sku = 'tea'").run()
    b.prepare("UPDATE customers SET email = 'bob@x' WHERE id = 2").run()
    b.prepare("DELETE FROM products WHERE sku = 'milk'").run()
    a.prepare('DELETE FROM customers WHERE id = 1').run()
    await waitFor(
      () =>
        dump(a, customers) === dump(b, customers) &&
        dump(a, products) === dump(b, products) &&
        dump(a, customers) ===
          JSON.stringify([
            { id: 2, name: 'Bob', email: 'bob@x', vip: 0 },
            { id: 3, name: 'Cid', email: null, vip: 0 },
          ]) &&
        dump(b, products) === JSON.stringify([{ sku: 'tea', name: 'Tea', price: 2.5, stock: 88 }]),
      { timeout: 20_000, message: 'changes of both sides on both sides' },
    )

    // From outside, through the status snapshot. Wait for a snapshot written after both databases
    // agreed that shows the counts asserted below: an earlier one (before the changes) also had
    // two customers, but two items.
    const agreedAt = pa.lines.length
    await waitFor(
      () =>
        pa.lines.slice(agreedAt).some((line) => {
          const e = parseEvent(line)
          return (
            e?.event === 'status' &&
            e.phase === 'live' &&
            isDeepStrictEqual(e.collections, { customers: 2, items: 1 }) &&
            isDeepStrictEqual(e.tables, { customers: 2, products: 1 }) &&
            (e.peers as { state: string }[]).some((p) => p.state === 'live')
          )
        }),
      { timeout: 20_000, message: 'a status snapshot of the final state' },
    )
    const status = await runCli(['status', '--dir', join(dir, 'a-mesh'), '--json'])
    expect(status.code).toBe(0)
    const report = JSON.parse(status.stdout)
    expect(report).toMatchObject({ running: true, state: 'running', lock: 'held' })
    expect(report.snapshot).toMatchObject({
      phase: 'live',
      collections: { customers: 2, items: 1 },
      tables: { customers: 2, products: 1 },
    })
    expect(report.snapshot.peers.some((p: { state: string }) => p.state === 'live')).toBe(true)
    // The app's writes were found through the database's directory watch, and status says so.
    expect(report.snapshot.changeDetection).toEqual({ mode: 'watch', pollMs: 1000 })
    const text = await runCli(['status', '--dir', join(dir, 'a-mesh')])
    expect(text.stdout).toMatch(/running \(pid \d+/)
    expect(text.stdout).toContain('live · 1 peer · customers 2, items 1')
    expect(text.stdout).toContain('app writes found at once through file notifications')

    // A clean stop, then status says so.
    pb.child.kill('SIGTERM')
    pa.child.kill('SIGINT')
    expect(await pb.exited).toBe(0)
    expect(await pa.exited).toBe(0)
    await pa.event('stopped')
    const after = await runCli(['status', '--dir', join(dir, 'a-mesh'), '--json'])
    expect(after.code).toBe(3)
    expect(JSON.parse(after.stdout)).toMatchObject({ running: false, state: 'stopped', snapshot: { phase: 'stopped' } })
    expect(pa.stderr() + pb.stderr()).not.toMatch(/error|database is locked/i)
  }, 60_000)

  it('stops cleanly on SIGTERM in the middle of seeding, and the next start finishes the seed', async () => {
    const dir = dirs.make('peer-stop')
    const db = appDb(
      join(dir, 'big.db'),
      'CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER NOT NULL)',
    )
    const insert = db.prepare('INSERT INTO items VALUES (?, ?, ?)')
    db.transaction(() => {
      for (let i = 0; i < 60_000; i++) insert.run(i, `item ${i}`, i % 7)
    })()
    const config = writeConfig(dir, 'big', {
      database: './big.db',
      mesh: { dir: './big-mesh' },
      meshId: 'cli-test',
      secret: 'a test secret',
      tables: [{ table: 'items', keys: 'global' }],
      settings: { seedBatchSize: 200 },
    })
    const first = startCli(['peer', '--json', '--config', config])
    running.push(first)
    await first.event('progress', (e) => e.phase === 'seed')
    first.child.kill('SIGTERM')
    expect(await first.exited).toBe(0)
    await first.event('stopped')
    expect(first.lines.some((l) => l.includes('"event":"live"'))).toBe(false)
    const status = JSON.parse((await runCli(['status', '--dir', join(dir, 'big-mesh'), '--json'])).stdout)
    expect(status.state).toBe('stopped')
    expect(status.snapshot.collections.items).toBeLessThan(60_000)

    const second = startCli(['peer', '--json', '--config', config])
    running.push(second)
    await second.event('live')
    await second.event('status', (e) => (e.collections as Record<string, number>).items === 60_000)
    second.child.kill('SIGTERM')
    expect(await second.exited).toBe(0)
  }, 60_000)

  it('writes its status when what it shows changes, and only every ten intervals while idle', async () => {
    const dir = dirs.make('peer-idle')
    const db = appDb(join(dir, 'idle.db'), 'CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)')
    const config = writeConfig(dir, 'idle', {
      database: './idle.db',
      mesh: { dir: './idle-mesh' },
      meshId: 'cli-test',
      secret: 'a test secret',
      tables: [{ table: 'items', keys: 'global' }],
      statusIntervalMs: 100,
    })
    const p = startCli(['peer', '--json', '--config', config])
    running.push(p)
    await p.event('live')
    await new Promise((r) => setTimeout(r, 300))
    const written = () => p.lines.filter((l) => l.includes('"event":"status"')).length
    const before = written()
    await new Promise((r) => setTimeout(r, 2_000))
    // Taken 20 times meanwhile; nothing it shows changed, so written once a second (every ten intervals).
    expect(written() - before).toBeGreaterThanOrEqual(1)
    expect(written() - before).toBeLessThanOrEqual(4)
    // A change is written at the next interval, not at the next of those.
    const changedAt = p.lines.length
    db.prepare("INSERT INTO items VALUES (1, 'tea')").run()
    await waitFor(
      () =>
        p.lines.slice(changedAt).some((l) => {
          const e = parseEvent(l)
          return (
            e?.event === 'status' &&
            isDeepStrictEqual(e.tables, { items: 1 }) &&
            isDeepStrictEqual(e.collections, { items: 1 })
          )
        }),
      { timeout: 10_000, message: 'a status showing the new row' },
    )
    p.child.kill('SIGTERM')
    expect(await p.exited).toBe(0)
  }, 30_000)
})
