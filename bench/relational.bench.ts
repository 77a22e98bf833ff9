// Initial mirror of a relational database (five tables with foreign keys)
// into an empty peer, against the same rows in the same tables without the
// foreign keys (the baseline, measured in the same run). The difference is
// what applying parents first, and parking children whose parent has not
// arrived yet, costs. Two peers run in this process through the library
// (`startPeer`), connected over WebSockets on 127.0.0.1.
import { copyFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import type { SyncAdapter } from '../src/bridge/adapter.js'
import { createSyncRegistry } from '../src/bridge/registry.js'
import { parseConfig } from '../src/config/load-config.js'
import { type RunningPeer, startPeer } from '../src/config/start-peer.js'
import { openBuiltinStore } from '../src/engine/open-builtin-store.js'
import type { Document } from '../src/mesh/document.js'
import type { RemoteBatch, Row } from '../src/repository/repository.js'
import { openSqliteRepository } from '../src/repository/sqlite-repository.js'
import { type BenchContext, type BenchResult, type BenchSuite, summarise, withBaseline } from './harness.js'

const SUITE = 'relational'
const TABLES = ['customers', 'products', 'orders', 'order_lines', 'payments'] as const

/** The shop's schema; `fk` false drops every REFERENCES clause, nothing else. */
function ddl(fk: boolean): string {
  const ref = (target: string) => (fk ? ` REFERENCES ${target} (id)` : '')
  return `
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, city TEXT, created_at TEXT NOT NULL);
CREATE TABLE products (id INTEGER PRIMARY KEY, sku TEXT NOT NULL UNIQUE, name TEXT NOT NULL, price NUMERIC(10,2) NOT NULL, active BOOLEAN NOT NULL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL${ref('customers')}, placed_at TEXT NOT NULL, status TEXT NOT NULL, total NUMERIC(12,2) NOT NULL);
CREATE TABLE order_lines (id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL${ref('orders')}${fk ? ' ON DELETE CASCADE' : ''}, product_id INTEGER NOT NULL${ref('products')}, quantity INTEGER NOT NULL, unit_price NUMERIC(10,2) NOT NULL);
CREATE TABLE payments (id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL${ref('orders')}, paid_at TEXT NOT NULL, method TEXT NOT NULL, amount NUMERIC(12,2) NOT NULL);
CREATE INDEX orders_customer ON orders (customer_id);
CREATE INDEX lines_order ON order_lines (order_id);
CREATE INDEX lines_product ON order_lines (product_id);
CREATE INDEX payments_order ON payments (order_id);
`
}

/** Rows per table for a total: customers 5%, products 2%, orders 20%, lines 53%, payments 20%. */
function sizes(total: number): Record<(typeof TABLES)[number], number> {
  const customers = Math.round(total * 0.05)
  const products = Math.round(total * 0.02)
  const orders = Math.round(total * 0.2)
  const payments = Math.round(total * 0.2)
  return { customers, products, orders, payments, order_lines: total - customers - products - orders - payments }
}

/** Writes the database with deterministic rows (the same for both schemas). */
function build(file: string, fk: boolean, total: number): number {
  const db = new Database(file)
  db.pragma('journal_mode = WAL')
  db.pragma('foreign_keys = ON')
  db.exec(ddl(fk))
  const n = sizes(total)
  db.transaction(() => {
    const c = db.prepare('INSERT INTO customers VALUES (?, ?, ?, ?, ?)')
    for (let i = 1; i <= n.customers; i++)
      c.run(i, `Customer ${i}`, `c${i}@example.com`, `City ${i % 97}`, '2024-01-01')
    const p = db.prepare('INSERT INTO products VALUES (?, ?, ?, ?, ?)')
    for (let i = 1; i <= n.products; i++)
      p.run(i, `SKU-${i}`, `Product ${i}`, (99 + (i % 50) * 100) / 100, i % 9 ? 1 : 0)
    const o = db.prepare('INSERT INTO orders VALUES (?, ?, ?, ?, ?)')
    for (let i = 1; i <= n.orders; i++) o.run(i, 1 + (i % n.customers), '2024-02-01 10:00:00', 'paid', (i % 900) + 0.5)
    const l = db.prepare('INSERT INTO order_lines VALUES (?, ?, ?, ?, ?)')
    for (let i = 1; i <= n.order_lines; i++) l.run(i, 1 + (i % n.orders), 1 + (i % n.products), 1 + (i % 4), 1.99)
    const pay = db.prepare('INSERT INTO payments VALUES (?, ?, ?, ?, ?)')
    for (let i = 1; i <= n.payments; i++) pay.run(i, 1 + (i % n.orders), '2024-02-01 10:05:00', 'card', (i % 900) + 0.5)
  })()
  db.close()
  return total
}

const COUNT_ALL = `SELECT ${TABLES.map((t) => `(SELECT count(*) FROM ${t})`).join(' + ')}`

function config(dir: string, name: string, extra: Record<string, unknown>) {
  return parseConfig(
    {
      database: `./${name}.db`,
      mesh: { dir: `./${name}-mesh` },
      meshId: 'bench-relational',
      secret: 'bench-relational-secret',
      // In the order `meshmirror init` lists them (by name): children come before their parents.
      // Ids assigned at one place (the seeded peer): the keys are the same row everywhere.
      tables: [...TABLES].sort().map((table) => ({ table, keys: 'global' })),
      statusIntervalMs: 60_000,
      ...extra,
    },
    `${name} (benchmark)`,
    dir,
  )
}

/**
 * One initial mirror: peer a holds the rows and has seeded its mesh; the
 * clock runs from the start of peer b (empty tables, empty mesh) until every
 * row is in b's database.
 */
async function mirrorOnce(ctx: BenchContext, template: string, fk: boolean, total: number): Promise<number> {
  const dir = ctx.tempDir(fk ? 'rel-fk' : 'rel-nofk')
  copyFileSync(template, join(dir, 'a.db'))
  const empty = new Database(join(dir, 'b.db'))
  empty.pragma('journal_mode = WAL')
  empty.exec(ddl(fk))
  empty.close()
  const peers: RunningPeer[] = []
  const reader = new Database(join(dir, 'b.db'), { readonly: true })
  try {
    const a = await startPeer(config(dir, 'a', { listen: { host: '127.0.0.1', port: 0 } }))
    peers.push(a)
    const count = reader.prepare(COUNT_ALL).pluck()
    // A mirror that stops making progress is a failure, not a slow result.
    const stallMs = 30_000
    let seen = -1
    let movedAt = Date.now()
    const started = performance.now()
    peers.push(await startPeer(config(dir, 'b', { peers: [`ws://127.0.0.1:${a.port}`] })))
    for (;;) {
      const n = count.get() as number
      if (n === total) break
      if (n !== seen) {
        seen = n
        movedAt = Date.now()
      } else if (Date.now() - movedAt > stallMs) {
        const s = await peers[1]!.snapshot()
        throw new Error(
          `${SUITE}: the ${fk ? 'foreign-key' : 'baseline'} mirror stopped at ${n} of ${total} rows, nothing new for ${stallMs / 1000} s (applied ${s.sync.applied}, rejected ${s.sync.rejected}, errors ${s.sync.errors}${s.lastError ? `; last error: ${s.lastError}` : ''})`,
        )
      }
      await new Promise((r) => setTimeout(r, 20))
    }
    const ms = performance.now() - started
    ctx.log(`${fk ? 'with' : 'without'} foreign keys: ${total.toLocaleString('en')} rows in ${ms.toFixed(0)} ms`)
    return ms
  } finally {
    reader.close()
    for (const p of peers.reverse()) await p.close()
  }
}

async function run(ctx: BenchContext): Promise<BenchResult[]> {
  const total = ctx.quick ? 3_000 : 100_000
  const runs = ctx.quick ? 1 : 3
  const templates = ctx.tempDir('rel-templates')
  const withFk = join(templates, 'fk.db')
  const withoutFk = join(templates, 'nofk.db')
  build(withFk, true, total)
  build(withoutFk, false, total)
  ctx.log(`${total.toLocaleString('en')} rows in ${TABLES.length} tables; ${runs} run(s) each, alternating`)
  const fkTimes: number[] = []
  const plainTimes: number[] = []
  for (let i = 0; i < runs; i++) {
    plainTimes.push(await mirrorOnce(ctx, withoutFk, false, total))
    fkTimes.push(await mirrorOnce(ctx, withFk, true, total))
  }
  const workload = (fk: boolean) =>
    `initial mirror of ${total.toLocaleString('en')} rows (customers, products, orders, order_lines, payments${
      fk ? ', with foreign keys: orders→customers, order_lines→orders/products, payments→orders' : ', no foreign keys'
    }) from a seeded peer into an empty one, two peers in one process over WebSockets on 127.0.0.1, from the empty peer's start until every row is in its database`
  const warmup = 'none: each run opens fresh databases and mesh directories'
  const rate = (times: number[]) => times.map((ms) => total / (ms / 1000))
  const plainRate = summarise(
    {
      suite: SUITE,
      name: 'initial mirror, no foreign keys',
      workload: workload(false),
      unit: 'rows/s',
      better: 'higher',
      warmup,
    },
    rate(plainTimes),
  )
  const fkRate = withBaseline(
    summarise(
      {
        suite: SUITE,
        name: 'initial mirror, foreign keys',
        workload: workload(true),
        unit: 'rows/s',
        better: 'higher',
        warmup,
      },
      rate(fkTimes),
    ),
    plainRate,
  )
  const plainTime = summarise(
    {
      suite: SUITE,
      name: 'initial mirror time, no foreign keys',
      workload: workload(false),
      unit: 'ms',
      better: 'lower',
      warmup,
    },
    plainTimes,
  )
  const fkTime = withBaseline(
    summarise(
      {
        suite: SUITE,
        name: 'initial mirror time, foreign keys',
        workload: workload(true),
        unit: 'ms',
        better: 'lower',
        warmup,
      },
      fkTimes,
    ),
    plainTime,
  )
  fkTime.target = {
    description: 'apply order and parking cost ≤ 1.5× the time without foreign keys',
    pass: (fkTime.ratio ?? Infinity) <= 1.5,
  }
  return [plainRate, fkRate, plainTime, fkTime, ...(await keyModes(ctx))]
}

const KEYS_DDL = `
CREATE TABLE orders (id INTEGER PRIMARY KEY, placed_at TEXT NOT NULL, status TEXT NOT NULL, total NUMERIC(12,2) NOT NULL);
CREATE TABLE order_lines (id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL REFERENCES orders (id), quantity INTEGER NOT NULL, unit_price NUMERIC(10,2) NOT NULL);
CREATE INDEX lines_order ON order_lines (order_id);
`

/**
 * Remote apply of orders and their lines (one foreign key) received from
 * another device, keys "local" (every row gets a key allocated here, the
 * mapping recorded, the line's order translated) against keys "global" (the
 * same rows under their ids): what the mapping costs.
 */
async function applyOnce(ctx: BenchContext, mode: 'global' | 'local', orders: number): Promise<number> {
  const dir = ctx.tempDir(`keys-${mode}`)
  const file = join(dir, 'till.db')
  const db = new Database(file)
  db.pragma('journal_mode = WAL')
  db.exec(KEYS_DDL)
  db.close()
  const repo = await openSqliteRepository({
    file,
    models: [
      { name: 'orders', keys: mode },
      { name: 'order_lines', keys: mode },
    ],
  })
  const id = (n: number) => (mode === 'local' ? `otherdevice:${n}` : String(n))
  const per = 500
  const batches: RemoteBatch[] = []
  for (let start = 1; start <= orders; start += per) {
    const orderWrites = []
    const lineWrites = []
    for (let i = start; i < start + per && i <= orders; i++) {
      orderWrites.push({
        id: id(i),
        row: { id: id(i), placed_at: '2024-02-01 10:00:00', status: 'paid', total: 12.5 },
        hash: `o${i}`,
        doc: null,
      })
      for (let l = 0; l < 3; l++) {
        const lineId = id(i * 3 + l)
        lineWrites.push({
          id: lineId,
          row: { id: lineId, order_id: id(i), quantity: 1 + l, unit_price: 1.99 },
          hash: `l${i}`,
          doc: null,
        })
      }
    }
    batches.push({
      groups: [
        { model: 'order_lines', writes: lineWrites, hold: [] },
        { model: 'orders', writes: orderWrites, hold: [] },
      ],
      checkpoints: [],
    })
  }
  try {
    const started = performance.now()
    for (const b of batches) await repo.applyRemoteBatch!(b)
    const ms = performance.now() - started
    const rows = orders * 4
    const check = new Database(file, { readonly: true })
    const orphans = check
      .prepare('SELECT count(*) FROM order_lines l LEFT JOIN orders o ON o.id = l.order_id WHERE o.id IS NULL')
      .pluck()
      .get() as number
    const count = check
      .prepare('SELECT (SELECT count(*) FROM orders) + (SELECT count(*) FROM order_lines)')
      .pluck()
      .get()
    check.close()
    if (count !== rows || orphans !== 0)
      throw new Error(`${SUITE}: keys ${mode} applied ${count} of ${rows} rows, ${orphans} lines without their order`)
    ctx.log(`keys ${mode}: ${rows.toLocaleString('en')} rows applied in ${ms.toFixed(0)} ms`)
    return rows / (ms / 1000)
  } finally {
    await repo.close()
  }
}

/** Rows to documents one to one, the key as `_id`. */
function passThrough(model: string): SyncAdapter {
  return {
    model,
    collection: model,
    observerQuery: () => ({}),
    documentId: (row: Row) => String(row.id),
    toDocument: ({ id, ...fields }: Row) => ({ ...fields, _id: String(id) }) as Document,
    fromDocument: ({ _id, ...fields }: Document) => ({ id: _id, ...fields }),
  }
}

/**
 * The same orders and lines received through the bridge, as users see it:
 * another site's mesh holds them, replication delivers them in chunks of
 * 1,000 changes (merged into this device's mesh), and the coordinator
 * observes, checks and applies them. From the first chunk to the last row
 * committed.
 */
async function bridgeOnce(ctx: BenchContext, mode: 'global' | 'local', orders: number): Promise<number> {
  const id = (n: number) => (mode === 'local' ? `otherdevice:${n}` : String(n))
  const src = await openBuiltinStore({ dir: ctx.tempDir(`keys-src-${mode}`) })
  const dir = ctx.tempDir(`keys-bridge-${mode}`)
  const file = join(dir, 'till.db')
  const db = new Database(file)
  db.pragma('journal_mode = WAL')
  db.exec(KEYS_DDL)
  db.close()
  const mesh = await openBuiltinStore({ dir: join(dir, 'mesh') })
  const repo = await openSqliteRepository({
    file,
    models: [
      { name: 'orders', keys: mode },
      { name: 'order_lines', keys: mode },
    ],
  })
  const registry = createSyncRegistry({
    mesh,
    repository: repo,
    adapters: [passThrough('orders'), passThrough('order_lines')],
  })
  try {
    for (let start = 1; start <= orders; start += 1000) {
      const o: Document[] = []
      const l: Document[] = []
      for (let i = start; i < start + 1000 && i <= orders; i++) {
        o.push({ _id: id(i), placed_at: '2024-02-01 10:00:00', status: 'paid', total: 12.5 })
        for (let k = 0; k < 3; k++) l.push({ _id: id(i * 3 + k), order_id: id(i), quantity: 1 + k, unit_price: 1.99 })
      }
      await src.upsert('orders', o)
      await src.upsert('order_lines', l)
    }
    await registry.start()
    const rows = orders * 4
    const all = await src.changesFor(await mesh.versionVector(), 0, 10_000_000)
    const started = performance.now()
    for (let i = 0; i < all.changes.length; i += 1000) await mesh.applyRemote(all.changes.slice(i, i + 1000))
    const count = new Database(file, { readonly: true })
    const total = count.prepare('SELECT (SELECT count(*) FROM orders) + (SELECT count(*) FROM order_lines)').pluck()
    const deadline = Date.now() + 300_000
    while ((total.get() as number) < rows) {
      if (Date.now() > deadline)
        throw new Error(`${SUITE}: keys ${mode} through the bridge stopped at ${total.get()} of ${rows} rows`)
      await new Promise((r) => setTimeout(r, 2))
    }
    const ms = performance.now() - started
    count.close()
    ctx.log(`keys ${mode} through the bridge: ${rows.toLocaleString('en')} rows in ${ms.toFixed(0)} ms`)
    return rows / (ms / 1000)
  } finally {
    await registry.close()
    await repo.close()
    await mesh.close()
    await src.close()
  }
}

async function keyModes(ctx: BenchContext): Promise<BenchResult[]> {
  const orders = ctx.quick ? 2_000 : 25_000
  const runs = ctx.quick ? 1 : 5
  const globalRates: number[] = []
  const localRates: number[] = []
  const globalBridge: number[] = []
  const localBridge: number[] = []
  for (let i = 0; i < runs; i++) {
    globalRates.push(await applyOnce(ctx, 'global', orders))
    localRates.push(await applyOnce(ctx, 'local', orders))
    globalBridge.push(await bridgeOnce(ctx, 'global', orders))
    localBridge.push(await bridgeOnce(ctx, 'local', orders))
  }
  const rows = `${orders.toLocaleString('en')} orders and ${(orders * 3).toLocaleString('en')} lines (order_lines.order_id → orders.id) received from another device`
  const modeText = (mode: string) =>
    mode === 'local'
      ? 'keys "local" (a key allocated per row, the mapping recorded, the foreign key translated)'
      : 'keys "global"'
  const warmup = 'none: each run opens fresh databases and mesh directories'
  const result = (name: string, workload: string, samples: number[]) =>
    summarise({ suite: SUITE, name, workload, unit: 'rows/s', better: 'higher', warmup }, samples)
  const bridgeWorkload = (mode: string) =>
    `remote apply through the bridge of ${rows}: another site's builtin mesh holds them, its changes are merged into this device's mesh in chunks of 1,000 (as replication delivers them) and the coordinator applies them to an empty SQLite database, ${modeText(mode)}; from the first chunk to the last row committed`
  const repoWorkload = (mode: string) =>
    `the repository's part alone: the same rows as batches of 500 orders with their lines handed to applyRemoteBatch, ${modeText(mode)}`
  const global = result('remote apply, keys global', bridgeWorkload('global'), globalBridge)
  const local = withBaseline(result('remote apply, keys local', bridgeWorkload('local'), localBridge), global)
  // Throughput: the mapping may cost at most 1.5×, i.e. keep at least 1/1.5 of the global rate.
  local.target = {
    description: 'keys "local" cost ≤ 1.5× keys "global" (rate ratio ≥ 0.67)',
    pass: (local.ratio ?? 0) >= 1 / 1.5,
  }
  const repoGlobal = result('repository apply alone, keys global', repoWorkload('global'), globalRates)
  const repoLocal = withBaseline(
    result('repository apply alone, keys local', repoWorkload('local'), localRates),
    repoGlobal,
  )
  return [global, local, repoGlobal, repoLocal]
}

export const relationalSuite: BenchSuite = { name: SUITE, run }
