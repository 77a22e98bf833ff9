import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { parseConfig, type RunningPeer, startPeer } from '../../src/index.js'
import { tempDirs, waitFor } from '../bridge/helpers/wait.js'
import { type CliProcess, runCli, startCli } from './helpers.js'

const dirs = tempDirs()
const running: CliProcess[] = []
const peers: RunningPeer[] = []
const dbs: Database.Database[] = []

afterEach(async () => {
  for (const p of running.splice(0)) {
    if (p.child.exitCode === null) p.child.kill('SIGKILL')
    await p.exited
  }
  for (const p of peers.splice(0)) await p.close()
  for (const db of dbs.splice(0)) db.close()
  dirs.cleanup()
})

function appDb(file: string): Database.Database {
  const db = new Database(file)
  db.pragma('busy_timeout = 10000')
  db.exec(`
    CREATE TABLE products (sku TEXT PRIMARY KEY, name TEXT NOT NULL, price REAL NOT NULL);
    CREATE TABLE prices (sku TEXT PRIMARY KEY, price REAL NOT NULL);
  `)
  dbs.push(db)
  return db
}

const config = (name: string, extra: Record<string, unknown> = {}) => ({
  database: `./${name}.db`,
  mesh: { dir: `./${name}-mesh` },
  meshId: 'conflicts-test',
  secret: 'a test secret',
  tables: [
    { table: 'products', id: 'sku' },
    { table: 'prices', recordConflicts: true },
  ],
  ...extra,
})

function writeConfig(dir: string, name: string, extra: Record<string, unknown> = {}): string {
  const file = join(dir, `${name}${Object.keys(extra).length}.config.json`)
  writeFileSync(file, JSON.stringify(config(name, extra), null, 2))
  return file
}

function peer(configFile: string): CliProcess {
  const p = startCli(['peer', '--json', '--config', configFile])
  running.push(p)
  return p
}

async function stop(p: CliProcess): Promise<void> {
  p.child.kill('SIGTERM')
  expect(await p.exited).toBe(0)
}

const row = (db: Database.Database, sku: string) =>
  db.prepare('SELECT sku, name, price FROM products WHERE sku = ?').get(sku) as Record<string, unknown> | undefined

describe('meshmirror conflicts', () => {
  it('lists a row both tills created under one key while apart, on both, and status counts it', async () => {
    const dir = dirs.make('conflicts')
    const a = appDb(join(dir, 'a.db'))
    const b = appDb(join(dir, 'b.db'))

    const pa = peer(writeConfig(dir, 'a', { listen: { host: '127.0.0.1', port: 0 } }))
    const port = (await pa.event('live')).port as number
    a.prepare("INSERT INTO products VALUES ('tea', 'Green tea', 3)").run()
    await pa.event('status', (e) => (e.collections as Record<string, number>).products === 1)

    // Till B, not connected to A, sells under the same key.
    const alone = peer(writeConfig(dir, 'b'))
    await alone.event('live')
    b.prepare("INSERT INTO products VALUES ('tea', 'Tea', 2.5)").run()
    await alone.event('status', (e) => (e.collections as Record<string, number>).products === 1)
    await stop(alone)

    // The tills meet.
    const pb = peer(writeConfig(dir, 'b', { peers: [`ws://127.0.0.1:${port}`] }))
    await pb.event('live')
    const [onA, onB] = await Promise.all([pa.event('conflict'), pb.event('conflict')])
    await waitFor(() => JSON.stringify(row(a, 'tea')) === JSON.stringify(row(b, 'tea')), {
      timeout: 20_000,
      message: 'one row on both tills',
    })
    const both = [
      { name: 'Green tea', price: 3 },
      { name: 'Tea', price: 2.5 },
    ]
    for (const e of [onA, onB]) {
      expect(e).toMatchObject({ collection: 'products', id: 'tea', kind: 'create' })
    }
    expect((onA.winner as { clock: string }).clock).toBe((onB.winner as { clock: string }).clock)

    const listed: Record<string, unknown>[] = []
    for (const mesh of ['a-mesh', 'b-mesh']) {
      const r = await runCli(['conflicts', '--dir', join(dir, mesh), '--json'])
      expect(r.code, r.stderr).toBe(0)
      const report = JSON.parse(r.stdout)
      expect(report.total).toBe(1)
      const [c] = report.conflicts
      expect(c).toMatchObject({ collection: 'products', id: 'tea', kind: 'create' })
      expect([c.winner.content, c.loser.content].sort((x, y) => x.price - y.price)).toEqual(
        [...both].sort((x, y) => x.price - y.price),
      )
      // Both tills hold the version that won: the rows have the same columns.
      expect(row(a, 'tea')).toEqual({ sku: 'tea', ...c.winner.content })
      listed.push(report)
    }

    const text = await runCli(['conflicts', '--dir', join(dir, 'a-mesh')])
    expect(text.stdout).toMatch(/: 1 conflict\n/)
    expect(text.stdout).toMatch(/products\/tea created on two devices/)
    expect(text.stdout).toMatch(/kept +site .*"price":/)
    expect(text.stdout).toMatch(/lost +site .*"price":/)
    expect(text.stdout).toMatch(/\(this device\)/)
    const byConfig = await runCli(['conflicts', '-c', writeConfig(dir, 'a'), '--collection', 'products', '--json'])
    expect(JSON.parse(byConfig.stdout)).toEqual(listed[0])

    const status = await runCli(['status', '--dir', join(dir, 'a-mesh'), '--json'])
    expect(status.code).toBe(0)
    expect(JSON.parse(status.stdout)).toMatchObject({ running: true, conflicts: 1 })
    expect((await runCli(['status', '--dir', join(dir, 'b-mesh')])).stdout).toMatch(/conflicts +1 \(/)
    await pa.event('status', (e) => (e.sync as { conflicts?: number }).conflicts === 1)

    // Restarting a till records nothing again.
    await stop(pb)
    const again = peer(writeConfig(dir, 'b', { peers: [`ws://127.0.0.1:${port}`] }))
    await again.event('live')
    await again.event('status', (e) => (e.peers as { state: string }[]).some((p) => p.state === 'live'))
    await stop(again)
    expect(JSON.parse((await runCli(['conflicts', '--dir', join(dir, 'b-mesh'), '--json'])).stdout).total).toBe(1)
    expect(pa.lines.filter((l) => l.includes('"event":"conflict"'))).toHaveLength(1)
  }, 120_000)

  it('refuses a bad directory or option with a stable code', async () => {
    const dir = dirs.make('conflicts-bad')
    const missing = await runCli(['conflicts', '--dir', join(dir, 'nowhere'), '--json'])
    expect(missing.code).toBe(1)
    expect(JSON.parse(missing.stdout).error.code).toBe('DIRECTORY_UNUSABLE')
    mkdirSync(join(dir, 'empty'))
    const empty = await runCli(['conflicts', '--dir', join(dir, 'empty')])
    expect(empty.code).toBe(1)
    expect(empty.stderr).toMatch(/^error \[STORE_INCOMPATIBLE\]: .*holds no builtin mesh store/)
    writeFileSync(join(dir, 'empty', 'mesh.sqlite'), 'not a database')
    const junk = await runCli(['conflicts', '--dir', join(dir, 'empty'), '--json'])
    expect(JSON.parse(junk.stdout).error.code).toBe('STORE_INCOMPATIBLE')
    const limit = await runCli(['conflicts', '--dir', dir, '--limit', '0'])
    expect(limit.stderr).toMatch(/^error \[INVALID_OPTIONS\]: --limit must be a positive integer/)
    const both = await runCli(['conflicts', '--dir', dir, '-c', 'x.json'])
    expect(both.stderr).toMatch(/^error \[INVALID_OPTIONS\]: Give --dir or --config/)
    const collection = await runCli(['conflicts', '--dir', dir, '--collection', 'no such'])
    expect(collection.stderr).toMatch(/^error \[INVALID_COLLECTION\]/)
    const noConfig = await runCli(['conflicts', '-c', join(dir, 'none.json'), '--json'])
    expect(JSON.parse(noConfig.stdout).error.code).toBe('INVALID_CONFIG')
  }, 90_000)
})

describe('recordConflicts in a table mapping', () => {
  it('keeps a concurrent change of a column that lost, for that table only', async () => {
    const dir = dirs.make('record-conflicts')
    const a = appDb(join(dir, 'a.db'))
    const b = appDb(join(dir, 'b.db'))
    const pa = await startPeer(parseConfig(config('a', { listen: { host: '127.0.0.1', port: 0 } }), 'a', dir))
    peers.push(pa)
    const pb = await startPeer(parseConfig(config('b', { peers: [`ws://127.0.0.1:${pa.port}`] }), 'b', dir))
    peers.push(pb)
    a.prepare("INSERT INTO prices VALUES ('tea', 2)").run()
    a.prepare("INSERT INTO products VALUES ('tea', 'Tea', 2)").run()
    await waitFor(() => b.prepare("SELECT count(*) FROM products WHERE sku = 'tea'").pluck().get() === 1, {
      message: 'the rows on B',
      timeout: 20_000,
    })
    await waitFor(() => b.prepare("SELECT price FROM prices WHERE sku = 'tea'").pluck().get() === 2, {
      message: 'the price on B',
      timeout: 20_000,
    })

    await pb.setOnline(false)
    const pushed = async (p: RunningPeer) => (await p.snapshot()).sync.pushed
    const [beforeA, beforeB] = [await pushed(pa), await pushed(pb)]
    a.prepare("UPDATE prices SET price = 3 WHERE sku = 'tea'").run()
    a.prepare("UPDATE products SET name = 'Green tea' WHERE sku = 'tea'").run()
    await waitFor(async () => (await pushed(pa)) >= beforeA + 2, { message: "A's changes in its mesh" })
    b.prepare("UPDATE prices SET price = 4 WHERE sku = 'tea'").run()
    b.prepare("UPDATE products SET name = 'Black tea' WHERE sku = 'tea'").run()
    await waitFor(async () => (await pushed(pb)) >= beforeB + 2, { message: "B's changes in its mesh" })
    const events: unknown[] = []
    pa.on('conflict', (c) => events.push(c))
    await pb.setOnline(true)
    await waitFor(
      () =>
        JSON.stringify(a.prepare('SELECT * FROM prices').all()) ===
          JSON.stringify(b.prepare('SELECT * FROM prices').all()) &&
        JSON.stringify(row(a, 'tea')) === JSON.stringify(row(b, 'tea')) &&
        events.length > 0,
      { timeout: 20_000, message: 'the tills agree again' },
    )

    for (const mesh of [pa.meshDir, pb.meshDir]) {
      const report = JSON.parse((await runCli(['conflicts', '--dir', mesh, '--json'])).stdout)
      expect(report.total).toBe(1)
      const [c] = report.conflicts
      expect(c).toMatchObject({ collection: 'prices', id: 'tea', kind: 'update', field: 'price' })
      expect([c.winner.content.price, c.loser.content.price].sort()).toEqual([3, 4])
      expect(a.prepare("SELECT price FROM prices WHERE sku = 'tea'").pluck().get()).toBe(c.winner.content.price)
    }
  }, 60_000)
})
