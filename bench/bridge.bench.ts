// The sync bridge's benchmarks: remote apply throughput against the seed's
// policy, startup with nothing changed, and change detection.
import { join } from 'node:path'
import Database from 'better-sqlite3'
import type { SyncAdapter } from '../src/bridge/adapter.js'
import { createSyncRegistry, type SyncRegistry } from '../src/bridge/registry.js'
import type { SyncSettings } from '../src/bridge/settings.js'
import { openBuiltinStore } from '../src/engine/open-builtin-store.js'
import type { BuiltinMesh } from '../src/engine/types.js'
import type { Document } from '../src/mesh/document.js'
import type { Row } from '../src/repository/repository.js'
import { openSqliteRepository, type SqliteRepository } from '../src/repository/sqlite-repository.js'
import { type BenchContext, type BenchResult, type BenchSuite, summarise, withBaseline } from './harness.js'

export const DDL = `CREATE TABLE IF NOT EXISTS counters (
  id TEXT PRIMARY KEY NOT NULL, branch_id INTEGER NOT NULL, business_id INTEGER NOT NULL, receipt_type TEXT NOT NULL,
  tot_rcpt_no INTEGER NOT NULL, cur_rcpt_no INTEGER NOT NULL, invc_no INTEGER NOT NULL, bhf_id TEXT,
  last_touched TEXT, created_at TEXT NOT NULL)`

/** Counts every write to counters, from any connection. */
export const WRITE_COUNTER = `
CREATE TABLE IF NOT EXISTS bench_writes (n INTEGER NOT NULL);
INSERT INTO bench_writes (n) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM bench_writes);
CREATE TRIGGER IF NOT EXISTS bench_w1 AFTER INSERT ON counters BEGIN UPDATE bench_writes SET n = n + 1; END;
CREATE TRIGGER IF NOT EXISTS bench_w2 AFTER UPDATE ON counters BEGIN UPDATE bench_writes SET n = n + 1; END;
CREATE TRIGGER IF NOT EXISTS bench_w3 AFTER DELETE ON counters BEGIN UPDATE bench_writes SET n = n + 1; END;`

/** The seed's apply policy: batches of 5, 100 ms apart, each row in its own transaction. */
export const SEED_APPLY: SyncSettings = { batchSize: 5, delayBetweenBatches: 100, transactionPerRow: true }

const num = (doc: Document, f: string) => doc[f] as number
export const counters: SyncAdapter = {
  model: 'counters',
  collection: 'counters',
  observerQuery: (ctx) => ({ branchId: ctx.branchId }),
  documentId: (r) => String(r.id),
  toDocument: (r) =>
    ({
      _id: String(r.id),
      branchId: r.branch_id,
      businessId: r.business_id,
      receiptType: r.receipt_type,
      totRcptNo: r.tot_rcpt_no,
      curRcptNo: r.cur_rcpt_no,
      invcNo: r.invc_no,
      bhfId: r.bhf_id,
      lastTouched: r.last_touched,
      createdAt: r.created_at,
    }) as Document,
  fromDocument: (d): Row => ({
    id: d._id,
    branch_id: num(d, 'branchId'),
    business_id: num(d, 'businessId'),
    receipt_type: d.receiptType as string,
    tot_rcpt_no: num(d, 'totRcptNo'),
    cur_rcpt_no: num(d, 'curRcptNo'),
    invc_no: num(d, 'invcNo'),
    bhf_id: (d.bhfId ?? null) as string | null,
    last_touched: (d.lastTouched ?? null) as string | null,
    created_at: d.createdAt as string,
  }),
}

export function doc(i: number, version: number): Document {
  return {
    _id: `c${String(i).padStart(7, '0')}`,
    branchId: 1,
    businessId: 10,
    receiptType: 'NS',
    totRcptNo: i,
    curRcptNo: i + version,
    invcNo: i,
    bhfId: '00',
    lastTouched: `2025-01-01T00:00:${String(version % 60).padStart(2, '0')}.000Z`,
    createdAt: '2025-01-01T00:00:00.000Z',
  }
}

export interface Device {
  mesh: BuiltinMesh
  repo: SqliteRepository
  registry: SyncRegistry
  app: Database.Database
  writes(): number
  close(): Promise<void>
}

export async function device(dir: string, settings: SyncSettings = {}, start = true): Promise<Device> {
  const file = join(dir, 'app.db')
  const app = new Database(file)
  app.pragma('journal_mode = WAL')
  app.exec(DDL)
  const mesh = await openBuiltinStore({ dir: join(dir, 'mesh') })
  const repo = await openSqliteRepository({ file, models: [{ name: 'counters' }] })
  const registry = createSyncRegistry({
    mesh,
    repository: repo,
    adapters: [counters],
    context: { branchId: 1 },
    settings,
  })
  if (start) await registry.start()
  return {
    mesh,
    repo,
    registry,
    app,
    writes: () => (app.prepare('SELECT n FROM bench_writes').pluck().get() as number | undefined) ?? 0,
    async close() {
      await registry.close()
      await repo.close()
      await mesh.close()
      app.close()
    },
  }
}

export async function upsertAll(mesh: BuiltinMesh, n: number, version: number, from = 0): Promise<void> {
  for (let i = from; i < n; i += 5000) {
    const docs: Document[] = []
    for (let j = i; j < Math.min(n, i + 5000); j++) docs.push(doc(j, version))
    await mesh.upsert('counters', docs)
  }
}

/** Everything `to` lacks from `from`, as replication would deliver it, in one commit or in chunks. */
export async function transfer(from: BuiltinMesh, to: BuiltinMesh, chunk?: number): Promise<void> {
  const all = await from.changesFor(await to.versionVector(), 0, 10_000_000)
  if (!chunk) {
    await to.applyRemote(all.changes)
    return
  }
  for (let i = 0; i < all.changes.length; i += chunk) await to.applyRemote(all.changes.slice(i, i + chunk))
}

export async function until(check: () => boolean, timeoutMs = 600_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error('bench: timed out waiting for the bridge')
    await new Promise((r) => setTimeout(r, 1))
  }
}

export const applied = (d: Device) => d.registry.coordinator.metrics().applied

/** Another site's mesh with `n` documents, and the directory of a closed device that has applied them all. */
export async function primed(ctx: BenchContext, n: number): Promise<{ src: BuiltinMesh; dir: string }> {
  const src = await openBuiltinStore({ dir: ctx.tempDir('apply-src') })
  const dir = ctx.tempDir('apply')
  await upsertAll(src, n, 0)
  const d = await device(dir)
  await transfer(src, d.mesh, 1000)
  await until(() => applied(d) === n)
  await d.close()
  return { src, dir }
}

/**
 * One apply run: a device holding `n` mirrored rows receives `n` changed
 * documents. Returns documents per second from the moment the mesh holds
 * them (one commit) to the moment the rows are committed, and the same
 * including the mesh's merge of chunks of 1,000 as replication sends them.
 */
export async function applyRun(
  ctx: BenchContext,
  n: number,
  settings: SyncSettings,
): Promise<{ bridge: number; pipeline: number }> {
  const { src, dir } = await primed(ctx, n)
  const d = await device(dir, settings)
  await upsertAll(src, n, 1)
  await transfer(src, d.mesh)
  let t0 = performance.now()
  await until(() => applied(d) === n)
  const bridge = n / ((performance.now() - t0) / 1000)
  await upsertAll(src, n, 2)
  t0 = performance.now()
  await transfer(src, d.mesh, 1000)
  await until(() => applied(d) === 2 * n)
  const pipeline = (n / (performance.now() - t0)) * 1000
  await d.close()
  await src.close()
  return { bridge, pipeline }
}

async function applyThroughput(ctx: BenchContext): Promise<BenchResult[]> {
  const n = ctx.quick ? 3_000 : 50_000
  const seedN = ctx.quick ? 100 : 1000
  const fastSeedN = ctx.quick ? 1000 : 10_000
  const runs = ctx.quick ? 1 : 5
  ctx.log(`remote apply: ${runs} runs of ${n} changed documents; seed policy on ${seedN}`)
  await applyRun(ctx, 2000, {})
  const ours = { bridge: [] as number[], pipeline: [] as number[] }
  const seed: number[] = []
  const seedNoDelay: number[] = []
  for (let r = 0; r < runs; r++) {
    const o = await applyRun(ctx, n, {})
    ours.bridge.push(o.bridge)
    ours.pipeline.push(o.pipeline)
    seed.push((await applyRun(ctx, seedN, SEED_APPLY)).bridge)
    seedNoDelay.push((await applyRun(ctx, fastSeedN, { ...SEED_APPLY, delayBetweenBatches: 0 })).bridge)
  }
  const common = { suite: 'bridge', unit: 'docs/s', better: 'higher' as const, warmup: 'one run of 2,000 documents' }
  const seedResult = summarise(
    {
      ...common,
      name: 'remote apply, seed policy (5 per batch, 100 ms apart, a row per transaction)',
      workload: `${seedN} changed documents committed to the mesh at once, applied to existing rows of the app's SQLite table`,
    },
    seed,
  )
  const seedFast = withBaseline(
    summarise(
      {
        ...common,
        name: 'remote apply, seed policy without the delays',
        workload: `${fastSeedN} changed documents, batches of 5, a row per transaction, no pause`,
      },
      seedNoDelay,
    ),
    seedResult,
  )
  const mine = withBaseline(
    summarise(
      {
        ...common,
        name: 'remote apply, meshmirror default policy',
        workload: `${n} changed documents committed to the mesh at once; from commit to rows committed in the app's SQLite table (change detection, mapping, batched transactions with sync state)`,
      },
      ours.bridge,
    ),
    seedResult,
  )
  mine.target = {
    description: '>= 1000x the seed policy and >= 50,000 docs/s',
    pass: (mine.ratio ?? 0) >= 1000 && mine.median >= 50_000,
  }
  // Against the apply alone, measured in the same runs: what the merge and the read of the sender's changes cost on top.
  const pipeline = withBaseline(
    summarise(
      {
        ...common,
        name: 'remote apply including the mesh merge',
        workload: `${n} changed documents arriving in chunks of 1,000 (read from the sending mesh, merged by this one, then applied by the bridge)`,
      },
      ours.pipeline,
    ),
    mine,
  )
  pipeline.target = { description: '>= 50,000 docs/s', pass: pipeline.median >= 50_000 }
  return [seedResult, seedFast, mine, pipeline]
}

/** A started, idle device whose app table holds `n` rows written before sync, all seeded into its mesh. */
export async function mirrored(dir: string, n: number): Promise<Device> {
  const d = await device(dir, {}, false)
  const insert = d.app.prepare(
    'INSERT INTO counters VALUES (@id, @branch_id, @business_id, @receipt_type, @tot_rcpt_no, @cur_rcpt_no, @invc_no, @bhf_id, @last_touched, @created_at)',
  )
  d.app.transaction(() => {
    for (let i = 0; i < n; i++) insert.run(counters.fromDocument(doc(i, 0)))
  })()
  await d.registry.start()
  await d.registry.coordinator.flush()
  return d
}

async function startup(ctx: BenchContext): Promise<BenchResult[]> {
  const n = ctx.quick ? 10_000 : 100_000
  const runs = ctx.quick ? 2 : 5
  ctx.log(`startup: ${n} mirrored rows, nothing changed, ${runs} runs`)
  const dir = ctx.tempDir('startup')
  const first = await mirrored(dir, n)
  first.app.exec(WRITE_COUNTER)
  const setupSeq = (await first.mesh.stats()).sequence
  await first.close()
  const times: number[] = []
  const writes: number[] = []
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now()
    const d = await device(dir)
    times.push(performance.now() - t0)
    const seq = (await d.mesh.stats()).sequence
    writes.push(d.writes() + seq - setupSeq)
    await d.close()
  }
  const workload = `${n} rows mirrored by an earlier run, nothing changed while away: open the mesh and the repository, catch up, drain, seed check, live`
  const time = summarise(
    {
      suite: 'bridge',
      name: 'startup to live (nothing changed)',
      workload,
      unit: 'ms',
      better: 'lower',
      warmup: 'none',
    },
    times,
  )
  time.target = { description: '< 1,000 ms', pass: time.median < 1000 }
  const written = summarise(
    {
      suite: 'bridge',
      name: 'writes at startup (repository rows + mesh documents)',
      workload,
      unit: 'writes',
      better: 'lower',
      warmup: 'none',
    },
    writes,
  )
  written.target = { description: '0', pass: written.max === 0 }
  return [time, written]
}

async function changeDetection(ctx: BenchContext): Promise<BenchResult[]> {
  const n = ctx.quick ? 2000 : 10_000
  const runs = ctx.quick ? 1 : 3
  ctx.log(`change detection: ${runs} runs of ${n} notifications, 80% unchanged`)
  const avoided: number[] = []
  for (let r = 0; r < runs; r++) {
    const src = await openBuiltinStore({ dir: ctx.tempDir('cd-src') })
    await upsertAll(src, n, 0)
    const d = await device(ctx.tempDir('cd'))
    await transfer(src, d.mesh, 1000)
    await until(() => applied(d) === n)
    // Another till saves every record again: 80% with the same content, 20% changed.
    const other = await openBuiltinStore({ dir: ctx.tempDir('cd-other') })
    const docs: Document[] = []
    for (let i = 0; i < n; i++) docs.push(doc(i, i % 5 === 0 ? 1 : 0))
    for (let i = 0; i < n; i += 5000) await other.upsert('counters', docs.slice(i, i + 5000))
    const before = d.registry.coordinator.metrics()
    await transfer(other, d.mesh, 1000)
    await until(() => d.registry.coordinator.metrics().received - before.received === n)
    await d.registry.coordinator.flush()
    const m = d.registry.coordinator.metrics()
    const written = m.applied - before.applied
    avoided.push((1 - written / n) * 100)
    await d.close()
    await other.close()
    await src.close()
  }
  const result = summarise(
    {
      suite: 'bridge',
      name: 'repository writes avoided by change detection',
      workload: `${n} remote notifications (another site re-saved every record), 80% with unchanged content`,
      unit: '%',
      better: 'higher',
      warmup: 'none',
    },
    avoided,
  )
  result.target = { description: 'every unchanged notification skipped (80%)', pass: result.min >= 79.99 }
  return [result]
}

export const bridgeSuite: BenchSuite = {
  name: 'bridge',
  async run(ctx) {
    return [...(await applyThroughput(ctx)), ...(await startup(ctx)), ...(await changeDetection(ctx))]
  },
}
