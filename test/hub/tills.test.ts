import { join } from 'node:path'
import { jetstreamManager } from '@nats-io/jetstream'
import { connect } from '@nats-io/transport-node'
import Database from 'better-sqlite3'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig, type RunningPeer, startPeer } from '../../src/index.js'
import { tempDirs, waitFor } from '../bridge/helpers/wait.js'
import { runCli } from '../cli/helpers.js'
import { type NatsServer, natsMissing, startNatsServer } from './nats-server.js'

// Tills as they run in a shop: an app's SQLite database, meshmirror's peer
// on it (startPeer, as `meshmirror peer` runs it), a real nats-server as the hub.

const missing = natsMissing()
const dirs = tempDirs()
const peers: RunningPeer[] = []
const dbs: Database.Database[] = []
let hub: NatsServer

afterEach(async () => {
  for (const p of peers.splice(0)) await p.close()
  for (const db of dbs.splice(0)) db.close()
  dirs.cleanup()
})

function appDb(file: string): Database.Database {
  const db = new Database(file)
  db.pragma('journal_mode = WAL')
  db.pragma('busy_timeout = 10000')
  db.exec(`
    CREATE TABLE products (sku TEXT PRIMARY KEY, name TEXT NOT NULL, price REAL NOT NULL);
    CREATE TABLE stock (sku TEXT PRIMARY KEY, qty INTEGER NOT NULL);
    CREATE TABLE orders (id TEXT PRIMARY KEY, branch_id INTEGER NOT NULL, total REAL NOT NULL, note TEXT);
  `)
  dbs.push(db)
  return db
}

interface TillSpec {
  prefix: string
  branch?: number
  extra?: Record<string, unknown>
  hubUrl?: string
}

async function till(dir: string, name: string, spec: TillSpec): Promise<{ db: Database.Database; peer: RunningPeer }> {
  const db = appDb(join(dir, `${name}.db`))
  const config = {
    database: `./${name}.db`,
    mesh: { dir: `./${name}-mesh` },
    meshId: 'hub-tills',
    secret: 'a test secret',
    tables: [
      { table: 'products', id: 'sku' },
      { table: 'stock', id: 'sku', counters: ['qty'] },
      { table: 'orders', ...(spec.branch === undefined ? {} : { scope: { branch_id: spec.branch } }) },
    ],
    hub: { servers: spec.hubUrl ?? hub.url, prefix: spec.prefix },
    ...spec.extra,
  }
  const peer = await startPeer(parseConfig(config, name, dir))
  peers.push(peer)
  return { db, peer }
}

const rows = (db: Database.Database, table: string) => db.prepare(`SELECT * FROM ${table} ORDER BY 1`).all()

async function hubCaughtUp(p: RunningPeer): Promise<void> {
  await waitFor(async () => (await p.snapshot()).hub?.caughtUp, { message: 'the hub link caught up', timeout: 20_000 })
}

describe.skipIf(missing)('tills through the hub (real SQLite, real nats-server)', () => {
  beforeAll(async () => {
    hub = await startNatsServer()
  })
  afterAll(async () => {
    await hub?.stop()
    hub?.remove()
  })

  it('carries inserts, updates, deletes and counters between tills with no LAN link', async () => {
    const dir = dirs.make('hub-only')
    const tills = await Promise.all(['a', 'b', 'c'].map((n) => till(dir, n, { prefix: 'hub-only' })))
    for (const t of tills) await hubCaughtUp(t.peer)
    const [a, b, c] = tills as [(typeof tills)[0], (typeof tills)[0], (typeof tills)[0]]
    a.db.prepare("INSERT INTO products VALUES ('tea', 'Tea', 2), ('coffee', 'Coffee', 3), ('cake', 'Cake', 4)").run()
    a.db.prepare("INSERT INTO stock VALUES ('tea', 100)").run()
    // The rows the other tills change next must be there first: an UPDATE of a row not yet received changes nothing.
    for (const t of [b, c]) {
      await waitFor(() => rows(t.db, 'products').length === 3 && rows(t.db, 'stock').length === 1, {
        message: "a's rows on b and c",
        timeout: 30_000,
      })
    }
    b.db.prepare("UPDATE products SET price = 2.5 WHERE sku = 'tea'").run()
    c.db.prepare("DELETE FROM products WHERE sku = 'cake'").run()
    // Three tills sell tea at once: every sale counts.
    for (let i = 0; i < 5; i++) {
      a.db.prepare("UPDATE stock SET qty = qty - 1 WHERE sku = 'tea'").run()
      b.db.prepare("UPDATE stock SET qty = qty - 2 WHERE sku = 'tea'").run()
      c.db.prepare("UPDATE stock SET qty = qty - 3 WHERE sku = 'tea'").run()
    }
    const expected = [
      { sku: 'coffee', name: 'Coffee', price: 3 },
      { sku: 'tea', name: 'Tea', price: 2.5 },
    ]
    for (const t of tills) {
      await waitFor(
        () =>
          JSON.stringify(rows(t.db, 'products')) === JSON.stringify(expected) &&
          JSON.stringify(rows(t.db, 'stock')) === JSON.stringify([{ sku: 'tea', qty: 70 }]),
        { message: 'every till converged', timeout: 60_000 },
      )
    }
    // Received changes count as commits to look through for sending, until the link has looked.
    await waitFor(async () => (await a.peer.snapshot()).hub?.unpushed === 0, { message: 'nothing left to send' })
    const snap = await a.peer.snapshot()
    expect(snap.peers).toEqual([])
    expect(snap.hub).toMatchObject({ state: 'connected', prefix: 'hub-only', lag: 0, unpushed: 0 })
    // meshmirror status shows the link, read from the snapshot the peer keeps in its directory.
    await waitFor(
      async () => {
        const r = await runCli(['status', '--dir', join(dir, 'a-mesh')])
        return /hub +127\.0\.0\.1:\d+ connected, hub-only in bucket meshmirror, position \d+, lag 0, unsent 0/.test(
          r.stdout,
        )
      },
      { message: 'the hub line of meshmirror status', timeout: 20_000 },
    )
    const json = JSON.parse((await runCli(['status', '--dir', join(dir, 'a-mesh'), '--json'])).stdout)
    expect(json.snapshot.hub).toMatchObject({ state: 'connected', prefix: 'hub-only' })
  }, 90_000)

  it('with the hub and the LAN at once, applies each change once and loops nowhere', async () => {
    const dir = dirs.make('hub-and-lan')
    const prefix = 'hub-and-lan'
    const a = await till(dir, 'a', { prefix, extra: { listen: { host: '127.0.0.1', port: 0 } } })
    const lan = { peers: [`ws://127.0.0.1:${a.peer.port}`] }
    const b = await till(dir, 'b', { prefix, extra: lan })
    const c = await till(dir, 'c', { prefix, extra: lan })
    for (const t of [a, b, c]) await hubCaughtUp(t.peer)
    const insert = a.db.prepare('INSERT INTO products VALUES (?, ?, ?)')
    a.db.transaction(() => {
      for (let i = 0; i < 200; i++) insert.run(`p${i}`, `product ${i}`, i)
    })()
    for (const t of [b, c]) {
      await waitFor(() => rows(t.db, 'products').length === 200, { message: '200 rows', timeout: 30_000 })
    }
    await waitFor(async () => (await a.peer.snapshot()).hub?.unpushed === 0, { message: 'a pushed' })
    const settle = async () => {
      const out = []
      for (const t of [a, b, c]) {
        const s = await t.peer.snapshot()
        out.push({ applied: s.sync.applied, pushed: s.sync.pushed, hub: s.hub?.pushed, unpushed: s.hub?.unpushed })
      }
      return out
    }
    await waitFor(async () => (await settle()).every((s) => s.unpushed === 0), { message: 'every till pushed' })
    const first = await settle()
    // Each till's database took each row once: from the LAN or the hub, whichever came first.
    expect(first.map((s) => s.applied)).toEqual([0, 200, 200])
    expect(first.map((s) => s.pushed)).toEqual([200, 0, 0])
    // The hub got each document once, from whichever till wrote it first.
    expect(first.reduce((n, s) => n + (s.hub ?? 0), 0)).toBe(200)
    const nc = await connect({ servers: hub.url })
    const jsm = await jetstreamManager(nc)
    const before = (await jsm.streams.info('KV_meshmirror')).state.last_seq
    // Nothing keeps going round.
    await new Promise((r) => setTimeout(r, 1500))
    expect(await settle()).toEqual(first)
    expect((await jsm.streams.info('KV_meshmirror')).state.last_seq).toBe(before)
    await nc.close()
  }, 90_000)

  it("sends a branch's orders to its own tills only (bytes measured)", async () => {
    const dir = dirs.make('by-branch')
    const prefix = 'by-branch'
    const one = await till(dir, 'one', { prefix, branch: 1 })
    const two = await till(dir, 'two', { prefix, branch: 2 })
    const twoBis = await till(dir, 'two-bis', { prefix, branch: 2 })
    for (const t of [one, two, twoBis]) await hubCaughtUp(t.peer)
    const bytesBefore = await hubBytes(one.peer)
    const note = 'n'.repeat(1000)
    const insert = two.db.prepare('INSERT INTO orders VALUES (?, 2, ?, ?)')
    two.db.transaction(() => {
      for (let i = 0; i < 300; i++) insert.run(`two-${i}`, i, note)
    })()
    one.db.prepare("INSERT INTO orders VALUES ('one-1', 1, 9.5, 'x')").run()
    two.db.prepare("INSERT INTO products VALUES ('tea', 'Tea', 2)").run()
    await waitFor(() => rows(twoBis.db, 'orders').length === 300, { message: "branch 2's orders on its other till" })
    await waitFor(() => rows(one.db, 'products').length === 1, { message: 'the shared catalogue on branch 1' })
    await waitFor(() => rows(two.db, 'orders').length === 300 && rows(twoBis.db, 'orders').length === 300, {
      message: 'branch 2 keeps to its own',
    })
    expect(rows(one.db, 'orders')).toEqual([{ id: 'one-1', branch_id: 1, total: 9.5, note: 'x' }])
    // Not in branch 1's mesh either: the documents never travelled there.
    expect((await one.peer.snapshot()).collections.orders).toBe(1)
    const received = (await hubBytes(one.peer)) - bytesBefore
    // 300 orders of over 1,000 bytes each went to branch 2; branch 1 received a product and its own order.
    expect(received).toBeLessThan(30_000)
    expect(received).toBeGreaterThan(0)
  }, 90_000)
})

/** Bytes the peer's hub connection received, as its status snapshot counts them. */
async function hubBytes(p: RunningPeer): Promise<number> {
  return (await p.snapshot()).hub?.bytesReceived ?? Number.NaN
}
