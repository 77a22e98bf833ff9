// The head office on Postgres: remote apply into Postgres through the
// repository against the same rows written by a plain batched
// INSERT … ON CONFLICT with the same driver, in the same run; and the time
// from a row committed to a till's SQLite file until it is readable in
// Postgres, through two `meshmirror peer` processes on 127.0.0.1.
// Needs PostgreSQL on 127.0.0.1:5432 (env MESHMIRROR_PG_URL for another);
// without one the suite says so and reports nothing (under CI it fails).
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import pg from 'pg'
import { openPostgresRepository } from '../src/postgres/postgres-repository.js'
import type { RemoteWrite } from '../src/repository/repository.js'
import { spawnJsonChild } from './compare-child.js'
import { type BenchContext, type BenchResult, type BenchSuite, percentile, summarise, withBaseline } from './harness.js'

const BASE = process.env.MESHMIRROR_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const CLI = 'src/cli/main.ts'
/** Rows per transaction, both ways: the bridge's default batch size. */
const BATCH = 1000
const ITEMS_DDL =
  'CREATE TABLE items (id text PRIMARY KEY, name text NOT NULL, qty bigint NOT NULL, price numeric(10,2) NOT NULL, updated_at timestamptz NOT NULL)'

async function withDatabase<T>(fn: (url: string) => Promise<T>): Promise<T> {
  const name = `mm_bench_${randomBytes(5).toString('hex')}`
  const root = new pg.Client({ connectionString: BASE })
  await root.connect()
  await root.query(`CREATE DATABASE ${name}`)
  const url = new URL(BASE)
  url.pathname = `/${name}`
  try {
    return await fn(url.toString())
  } finally {
    await root.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    await root.end()
  }
}

const row = (i: number, version: number) => ({
  id: `item-${String(i).padStart(6, '0')}`,
  name: `item ${i} v${version}`,
  qty: i + version,
  price: `${(i % 1000) + version}.${String(i % 100).padStart(2, '0')}`,
  updated_at: new Date(Date.UTC(2026, 0, 1) + version * 60_000 + i).toISOString(),
})

/** Rows per second writing `n` changed rows through the repository's remote apply (sync state and hold checks included). */
async function meshmirrorApply(url: string, n: number): Promise<number> {
  const admin = new pg.Client({ connectionString: url })
  await admin.connect()
  await admin.query(`DROP TABLE IF EXISTS items; ${ITEMS_DDL}`)
  await admin.query('DROP SCHEMA IF EXISTS meshmirror CASCADE')
  await admin.end()
  const repo = await openPostgresRepository({ connectionString: url, models: [{ name: 'items' }] })
  try {
    await repo.setChangeCapture('items', true)
    const batch = (version: number, from: number): RemoteWrite[] =>
      Array.from({ length: Math.min(BATCH, n - from) }, (_, k) => {
        const r = row(from + k, version)
        return { id: r.id, row: r, hash: `h${version}-${from + k}`, doc: null }
      })
    for (let from = 0; from < n; from += BATCH) {
      await repo.applyRemoteBatch!({ groups: [{ model: 'items', writes: batch(0, from), hold: [] }], checkpoints: [] })
    }
    const t0 = performance.now()
    for (let from = 0; from < n; from += BATCH) {
      await repo.applyRemoteBatch!({
        groups: [{ model: 'items', writes: batch(1, from), hold: [] }],
        checkpoints: [{ key: 'cursor', value: String(from) }],
      })
    }
    const rate = n / ((performance.now() - t0) / 1000)
    if ((await repo.pendingChangeCount(['items'])).count !== 0) throw new Error('a remote apply was captured')
    return rate
  } finally {
    await repo.close()
  }
}

/** Rows per second writing the same `n` changed rows with plain multi-row INSERT … ON CONFLICT DO UPDATE, a transaction per batch. */
async function plainUpsert(url: string, n: number): Promise<number> {
  const pool = new pg.Pool({ connectionString: url, max: 2 })
  await pool.query(`DROP TABLE IF EXISTS items; ${ITEMS_DDL}`)
  const write = async (version: number) => {
    for (let from = 0; from < n; from += BATCH) {
      const rows = Array.from({ length: Math.min(BATCH, n - from) }, (_, k) => row(from + k, version))
      const params: unknown[] = []
      const values = rows.map((r) => {
        params.push(r.id, r.name, r.qty, r.price, r.updated_at)
        const b = params.length - 4
        return `($${b}, $${b + 1}, $${b + 2}, $${b + 3}, $${b + 4})`
      })
      const client = await pool.connect()
      try {
        await client.query('BEGIN')
        await client.query(
          `INSERT INTO items (id, name, qty, price, updated_at) VALUES ${values.join(', ')} ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, qty = EXCLUDED.qty, price = EXCLUDED.price, updated_at = EXCLUDED.updated_at`,
          params,
        )
        await client.query('COMMIT')
      } finally {
        client.release()
      }
    }
  }
  try {
    await write(0)
    const t0 = performance.now()
    await write(1)
    return n / ((performance.now() - t0) / 1000)
  } finally {
    await pool.end()
  }
}

const TILL_SCHEMA = 'CREATE TABLE sales (id TEXT PRIMARY KEY, till TEXT NOT NULL, amount INTEGER NOT NULL)'
const HO_SCHEMA = 'CREATE TABLE sales (id text PRIMARY KEY, till text NOT NULL, amount integer NOT NULL)'

/** Milliseconds from a row committed in the till's SQLite file until Postgres returns it, per write. */
async function tillToPostgres(ctx: BenchContext, url: string, writes: number): Promise<number[]> {
  const dir = ctx.tempDir('pg-latency')
  const admin = new pg.Client({ connectionString: url })
  await admin.connect()
  await admin.query(HO_SCHEMA)
  const tillDb = join(dir, 'till.db')
  const t = new Database(tillDb)
  t.exec(TILL_SCHEMA)
  t.close()
  const config = (name: string, database: string, extra: object) => {
    const file = join(dir, `${name}.json`)
    writeFileSync(
      file,
      JSON.stringify({
        database,
        mesh: { dir: join(dir, `${name}-mesh`) },
        meshId: 'pg-latency',
        secret: 'pg-latency-bench-secret',
        tables: [{ table: 'sales' }],
        ...extra,
      }),
    )
    return file
  }
  const ho = spawnJsonChild(CLI, [
    'peer',
    '--json',
    '--config',
    config('ho', url, { listen: { host: '127.0.0.1', port: 0 } }),
  ])
  let till: ReturnType<typeof spawnJsonChild> | undefined
  try {
    const live = (await ho.waitFor((l) => l.event === 'live', 60_000)) as { port: number }
    till = spawnJsonChild(CLI, [
      'peer',
      '--json',
      '--config',
      config('till', tillDb, { peers: [`ws://127.0.0.1:${live.port}`] }),
    ])
    await till.waitFor(
      (l) => l.event === 'status' && (l.peers as { state: string }[]).some((p) => p.state === 'live'),
      60_000,
    )
    const writer = new Database(tillDb)
    const insert = writer.prepare('INSERT INTO sales (id, till, amount) VALUES (?, ?, ?)')
    const latencies: number[] = []
    for (let i = 0; i < writes + 5; i++) {
      const id = `s${i}`
      insert.run(id, 'till-1', i)
      const t0 = performance.now()
      for (;;) {
        if ((await admin.query('SELECT 1 FROM sales WHERE id = $1', [id])).rowCount) break
        if (performance.now() - t0 > 10_000) throw new Error(`row ${id} did not reach Postgres within 10 s`)
        await new Promise((r) => setTimeout(r, 1))
      }
      if (i >= 5) latencies.push(performance.now() - t0)
      await new Promise((r) => setTimeout(r, 50))
    }
    writer.close()
    return latencies
  } finally {
    await till?.stop()
    await ho.stop()
    await admin.end()
  }
}

async function reachable(): Promise<string | undefined> {
  const c = new pg.Client({ connectionString: BASE, connectionTimeoutMillis: 3000 })
  try {
    await c.connect()
    return undefined
  } catch (error) {
    return (error as Error).message
  } finally {
    await c.end().catch(() => undefined)
  }
}

export const postgresSuite: BenchSuite = {
  name: 'postgres',
  async run(ctx) {
    const problem = await reachable()
    if (problem) {
      const message = `no PostgreSQL server at ${BASE.replace(/^postgres:\/\/[^@]*@/, '')} (${problem}): the postgres suite is skipped`
      if (process.env.CI === 'true') throw new Error(message)
      ctx.log(message)
      return []
    }
    const n = ctx.quick ? 2_000 : 50_000
    const runs = ctx.quick ? 1 : 3
    const writes = ctx.quick ? 40 : 200
    ctx.log(
      `remote apply into Postgres: ${n} changed rows, ${runs} runs each way; till → Postgres latency: ${writes} rows`,
    )
    const ours: number[] = []
    const plain: number[] = []
    let latencies: number[] = []
    await withDatabase(async (url) => {
      // One of each first, to warm the server's caches and the driver.
      await plainUpsert(url, Math.min(n, 2_000))
      await meshmirrorApply(url, Math.min(n, 2_000))
      for (let r = 0; r < runs; r++) {
        plain.push(await plainUpsert(url, n))
        ours.push(await meshmirrorApply(url, n))
      }
      await (async () => {
        const admin = new pg.Client({ connectionString: url })
        await admin.connect()
        await admin.query('DROP TABLE IF EXISTS items; DROP SCHEMA IF EXISTS meshmirror CASCADE')
        await admin.end()
      })()
      latencies = await tillToPostgres(ctx, url, writes)
    })
    const workload = `${n} changed rows (text key, text, bigint, numeric(10,2), timestamptz) over ${n} existing ones, ${BATCH} per transaction`
    const base = summarise(
      {
        suite: 'postgres',
        name: 'plain batched INSERT … ON CONFLICT (pg)',
        workload: `${workload}: multi-row INSERT … ON CONFLICT DO UPDATE with the pg driver`,
        unit: 'rows/s',
        better: 'higher',
        warmup: '2,000 rows',
      },
      plain,
    )
    const measured = withBaseline(
      summarise(
        {
          suite: 'postgres',
          name: 'meshmirror remote apply into Postgres',
          workload: `${workload}: PostgresRepository.applyRemoteBatch (rows locked and checked for unsent local changes, capture skipped, sync state and cursor written in the same transaction)`,
          unit: 'rows/s',
          better: 'higher',
          warmup: '2,000 rows',
        },
        ours,
      ),
      base,
    )
    const results: BenchResult[] = [
      base,
      { ...measured, target: { description: '≥ 0.5× plain upsert', pass: (measured.ratio ?? 0) >= 0.5 } },
    ]
    for (const p of [50, 99]) {
      results.push(
        summarise(
          {
            suite: 'postgres',
            name: `till to Postgres p${p}`,
            workload: `${writes} single-row inserts 50 ms apart into a till's SQLite file, until Postgres returns the row, through two meshmirror peer processes on 127.0.0.1 (capture, mesh, replication, apply)`,
            unit: 'ms',
            better: 'lower',
            warmup: '5 inserts',
          },
          [percentile(latencies, p)],
        ),
      )
    }
    return results
  },
}
