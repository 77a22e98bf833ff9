import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it, onTestFinished } from 'vitest'
import { loadConfig } from '../../src/config/load-config.js'
import { type CliProcess, runCli, startCli } from '../cli/helpers.js'
import { FIXTURES, removeTempDirs, spawnFixture, tempDir } from './helpers.js'

// `meshmirror peer` with the Ditto SDK as the mesh, through the CLI, against
// the real SDK. Sync between Ditto peers needs a licence token: without one
// the peer mirrors into the local Ditto store, which is what is checked here.

afterAll(removeTempDirs)

const SCHEMA = `
  CREATE TABLE products (id TEXT PRIMARY KEY, name TEXT NOT NULL, price REAL);
  CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    product_id TEXT NOT NULL REFERENCES products(id),
    qty INTEGER NOT NULL
  );`

function shop(dir: string): { db: string; config: string; meshDir: string } {
  const db = join(dir, 'pos.db')
  const d = new Database(db)
  d.exec(SCHEMA)
  d.exec(`INSERT INTO products VALUES ('tea', 'Tea', 2.5), ('cake', 'Cake', 3)`)
  d.exec("INSERT INTO orders (product_id, qty) VALUES ('tea', 2), ('cake', 1)")
  d.close()
  const meshDir = join(dir, 'pos-ditto')
  const config = join(dir, 'meshmirror.config.json')
  writeFileSync(
    config,
    JSON.stringify({
      database: './pos.db',
      mesh: { dir: './pos-ditto', backend: 'ditto', ditto: { diskLogs: false, transports: { lan: false } } },
      meshId: 'shop-1',
      tables: [{ table: 'products' }, { table: 'orders', keys: 'local' }],
      statusIntervalMs: 100,
    }),
  )
  return { db, config, meshDir }
}

async function live(config: string): Promise<CliProcess> {
  const peer = startCli(['peer', '--json', '--config', config])
  await peer.event('live')
  return peer
}

async function stop(peer: CliProcess): Promise<number | null> {
  peer.child.kill('SIGTERM')
  return peer.exited
}

async function plainDitto(args: string[]): Promise<Record<string, unknown>> {
  const child = spawnFixture('plain-ditto.ts', args)
  const line = await child.waitFor((l) => 'docs' in l || 'wrote' in l, 60_000)
  await child.exited
  return line
}

describe('meshmirror peer on a Ditto mesh', () => {
  it('mirrors a plain-SQL database into a Ditto directory that a plain Ditto process reads, and stops with exit 0', async () => {
    const dir = tempDir()
    const { db, config, meshDir } = shop(dir)
    const peer = await live(config)
    // A row written while live reaches the mesh too.
    const d = new Database(db)
    d.exec("INSERT INTO products VALUES ('scone', 'Scone', 1.75)")
    d.close()
    await peer.event('status', (e) => (e.collections as Record<string, number>).products === 3)
    expect(await stop(peer)).toBe(0)
    expect(peer.stderr()).not.toMatch(/SIGABRT|panic/i)
    // Without a licence token the peer says what works: the local store, not sync.
    if (!process.env.DITTO_LICENSE_TOKEN) expect(peer.stderr()).toMatch(/no Ditto licence token.*sync .*does not start/)

    const { docs } = (await plainDitto(['dump', meshDir, 'products', 'orders'])) as {
      docs: Record<string, Record<string, unknown>[]>
    }
    expect(docs.products!.map((p) => [p._id, p.name, p.price])).toEqual([
      ['cake', 'Cake', 3],
      ['scone', 'Scone', 1.75],
      ['tea', 'Tea', 2.5],
    ])
    // Local integer keys: the mesh names each order by its creating device, and the foreign key by the product.
    expect(docs.orders).toHaveLength(2)
    for (const o of docs.orders!) expect(String(o._id)).toMatch(/^[0-9a-z]{10}:[12]$/)
    expect(docs.orders!.map((o) => o.product_id).sort()).toEqual(['cake', 'tea'])
  })

  it('applies at the next start the documents another Ditto process wrote while the peer was stopped', async () => {
    const dir = tempDir()
    const { db, config, meshDir } = shop(dir)
    expect(await stop(await live(config))).toBe(0)
    await plainDitto([
      'write',
      meshDir,
      'products',
      JSON.stringify([
        { _id: 'bun', name: 'Bun', price: 1.2 },
        { _id: 'tea', name: 'Green tea', price: 2.8 },
      ]),
    ])
    const peer = await live(config)
    expect(await stop(peer)).toBe(0)
    const d = new Database(db, { readonly: true })
    expect(d.prepare('SELECT id, name, price FROM products ORDER BY id').all()).toEqual([
      { id: 'bun', name: 'Bun', price: 1.2 },
      { id: 'cake', name: 'Cake', price: 3 },
      { id: 'tea', name: 'Green tea', price: 2.8 },
    ])
    d.close()
  })

  it('refuses a directory a plain Ditto process holds with LOCK_HELD naming its pid; status and doctor say so without opening it', async () => {
    const dir = tempDir()
    const { config, meshDir } = shop(dir)
    expect(await stop(await live(config))).toBe(0)
    const holder = spawnFixture('plain-holder.ts', [meshDir])
    // Also when the test times out, where `finally` below never runs.
    onTestFinished(() => holder.kill())
    try {
      const { held } = (await holder.waitFor((l) => 'held' in l, 60_000)) as { held: number }
      const started = Date.now()
      const r = await runCli(['peer', '--config', config])
      expect(r.code).not.toBe(0)
      expect(r.stderr).toMatch(/LOCK_HELD/)
      expect(r.stderr).toContain(String(held))
      // The refusal comes from a wait that never blocks the loop: well inside the test's time.
      expect(Date.now() - started).toBeLessThan(60_000)

      const doctor = await runCli(['doctor', '--dir', meshDir, '--json'])
      expect(doctor.code).toBe(3)
      const diagnosis = JSON.parse(doctor.stdout) as { status: string; findings: string[]; storeVersion?: string }
      expect(diagnosis.status).toBe('held')
      expect(diagnosis.findings[0]).toContain(String(held))
      expect(diagnosis.storeVersion).toMatch(/^ditto /)

      const status = await runCli(['status', '--dir', meshDir, '--json'])
      expect((JSON.parse(status.stdout) as { state: string }).state).toBe('held')
    } finally {
      await holder.kill()
    }
  })

  it('a stopped Ditto mesh reads as stopped in status, with its site and collections', async () => {
    const dir = tempDir()
    const { config, meshDir } = shop(dir)
    expect(await stop(await live(config))).toBe(0)
    const status = await runCli(['status', '--dir', meshDir, '--json'])
    expect(status.code).toBe(3) // no peer running
    const report = JSON.parse(status.stdout) as {
      state: string
      snapshot: { siteId: string; collections: Record<string, number>; peers: unknown[] }
    }
    expect(report.state).toBe('stopped')
    expect(report.snapshot.collections).toEqual({ products: 2, orders: 2 })
    expect(report.snapshot.peers).toEqual([])
    const doctor = await runCli(['doctor', '--dir', meshDir, '--json'])
    expect(JSON.parse(doctor.stdout).siteId).toBe(report.snapshot.siteId)
  })

  it('init --backend ditto writes a config the peer accepts, and refuses builtin-only flags', async () => {
    const dir = tempDir()
    const { db } = shop(dir)
    const out = join(dir, 'ditto.config.json')
    const r = await runCli(['init', '--database', db, '--out', out, '--backend', 'ditto'])
    expect(r.code).toBe(0)
    const written = JSON.parse(readFileSync(out, 'utf8'))
    expect(written.mesh).toMatchObject({ backend: 'ditto', ditto: { licenseToken: '$DITTO_LICENSE_TOKEN' } })
    expect(written).not.toHaveProperty('secret')
    const config = await loadConfig(out)
    expect(config.mesh.backend).toBe('ditto')
    const bad = await runCli([
      'init',
      '--database',
      db,
      '--out',
      join(dir, 'x.json'),
      '--backend',
      'ditto',
      '--port',
      '1',
    ])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toMatch(/INVALID_CONFIG.*--port/)
  })

  it('names the package to install when the Ditto SDK is missing, and writes nothing', async () => {
    const dir = tempDir()
    const { config, meshDir } = shop(dir)
    const r = await runCli(['peer', '--config', config], { nodeArgs: ['--import', join(FIXTURES, 'no-sdk.mjs')] })
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/@dittolive\/ditto/)
    expect(r.stderr).toMatch(/npm install/)
    const { existsSync } = await import('node:fs')
    expect(existsSync(join(meshDir, '__ditto_version.txt'))).toBe(false)
  })

  it.skipIf(!process.env.DITTO_LICENSE_TOKEN)(
    'two peers on Ditto sync their databases (needs DITTO_LICENSE_TOKEN; skipped without one)',
    async () => {
      const a = shop(tempDir())
      const b = shop(tempDir())
      for (const c of [a, b]) {
        const cfg = JSON.parse(readFileSync(c.config, 'utf8'))
        cfg.mesh.ditto = { diskLogs: false, licenseToken: '$DITTO_LICENSE_TOKEN', transports: { lan: true } }
        writeFileSync(c.config, JSON.stringify(cfg))
      }
      const d = new Database(b.db)
      d.exec("INSERT INTO products VALUES ('only-b', 'Only B', 9)")
      d.close()
      const pa = await live(a.config)
      const pb = await live(b.config)
      await pa.event('status', (e) => (e.collections as Record<string, number>).products === 3)
      expect(await stop(pa)).toBe(0)
      expect(await stop(pb)).toBe(0)
    },
  )
})

describe('moving a shop between backends', () => {
  it('a database mirrored on the builtin engine, then on Ditto, carries every row into the new Ditto mesh', async () => {
    const dir = tempDir()
    const { db, config, meshDir } = shop(dir)
    const dittoConfig = JSON.parse(readFileSync(config, 'utf8'))
    const builtin = {
      ...dittoConfig,
      mesh: { dir: './pos-mesh' },
      secret: 'a-secret-for-the-test',
    }
    writeFileSync(config, JSON.stringify(builtin))
    expect(await stop(await live(config))).toBe(0)
    const d = new Database(db)
    d.exec("INSERT INTO products VALUES ('late', 'Written between the two', 4)")
    d.close()
    writeFileSync(config, JSON.stringify(dittoConfig))
    expect(await stop(await live(config))).toBe(0)
    const { docs } = (await plainDitto(['dump', meshDir, 'products', 'orders'])) as {
      docs: Record<string, Record<string, unknown>[]>
    }
    expect(docs.products!.map((p) => p._id)).toEqual(['cake', 'late', 'tea'])
    expect(docs.orders).toHaveLength(2)
  })
})
