import { spawn } from 'node:child_process'
import Database from 'better-sqlite3'
import { openBuiltinStore } from '../src/engine/open-builtin-store.js'
import {
  type BenchContext,
  type BenchResult,
  type BenchSuite,
  median,
  percentile,
  summarise,
  withBaseline,
} from './harness.js'
import { eightFields } from './workload.js'

const BATCH = 1000

async function upsertRate(ctx: BenchContext, n: number): Promise<number> {
  const mesh = await openBuiltinStore({ dir: ctx.tempDir('upsert') })
  const t0 = performance.now()
  for (let i = 0; i < n; i += BATCH) {
    const docs = []
    for (let j = i; j < i + BATCH; j++) docs.push(eightFields(j))
    await mesh.upsert('items', docs)
  }
  const rate = n / ((performance.now() - t0) / 1000)
  await mesh.close()
  return rate
}

function plainRate(ctx: BenchContext, n: number): number {
  const db = new Database(`${ctx.tempDir('plain')}/plain.sqlite`)
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = NORMAL')
  db.exec('CREATE TABLE t (id TEXT PRIMARY KEY, doc TEXT NOT NULL)')
  const ins = db.prepare('INSERT INTO t (id, doc) VALUES (?, ?)')
  const load = db.transaction((docs: { _id: string }[]) => {
    for (const d of docs) ins.run(d._id, JSON.stringify(d))
  })
  const t0 = performance.now()
  for (let i = 0; i < n; i += BATCH) {
    const docs = []
    for (let j = i; j < i + BATCH; j++) docs.push(eightFields(j))
    load(docs)
  }
  const rate = n / ((performance.now() - t0) / 1000)
  db.close()
  return rate
}

async function upsertThroughput(ctx: BenchContext): Promise<BenchResult[]> {
  const n = ctx.quick ? 20_000 : 100_000
  const runs = ctx.quick ? 2 : 5
  ctx.log(`upsert throughput: ${runs} runs of ${n} docs`)
  await upsertRate(ctx, 5_000)
  plainRate(ctx, 5_000)
  const ours: number[] = []
  const plain: number[] = []
  // Alternate the two so drift in machine load hits both alike.
  for (let r = 0; r < runs; r++) {
    ours.push(await upsertRate(ctx, n))
    plain.push(plainRate(ctx, n))
  }
  const workload = `${n} new 8-field documents, batches of ${BATCH}, WAL, synchronous=NORMAL`
  const base = summarise(
    {
      suite: 'engine',
      name: 'plain better-sqlite3 JSON table (ceiling)',
      workload,
      unit: 'docs/s',
      better: 'higher',
      warmup: '5,000 docs',
    },
    plain,
  )
  const result = withBaseline(
    summarise(
      { suite: 'engine', name: 'batched upsert', workload, unit: 'docs/s', better: 'higher', warmup: '5,000 docs' },
      ours,
    ),
    base,
  )
  result.target = { description: '>= 0.3 of the ceiling', pass: (result.ratio ?? 0) >= 0.3 }
  return [base, result]
}

async function observerLatency(ctx: BenchContext): Promise<BenchResult[]> {
  const n = ctx.quick ? 500 : 2000
  ctx.log(`observer latency: ${n} single-document commits`)
  const mesh = await openBuiltinStore({ dir: ctx.tempDir('observe') })
  let t0 = 0
  let wake: () => void = () => {}
  const samples: number[] = []
  const observer = mesh.observe({ collection: 'orders', filter: { open: true } }, () => {
    samples.push(performance.now() - t0)
    wake()
  })
  await observer.ready
  let seq = 0
  const commit = async (i: number) => {
    // A new value every time: writing an equal value is not a change.
    seq++
    const delivered = new Promise<void>((r) => {
      wake = r
    })
    t0 = performance.now()
    await mesh.upsert('orders', [{ _id: `o${i % 100}`, open: true, seq }])
    await delivered
  }
  for (let i = 0; i < 100; i++) await commit(i)
  samples.length = 0
  const commitOnly: number[] = []
  for (let i = 0; i < n; i++) await commit(i)
  for (let i = 0; i < n; i++) {
    const t = performance.now()
    await mesh.upsert('other', [{ _id: `x${i % 100}`, seq: seq + i }])
    commitOnly.push(performance.now() - t)
  }
  observer.cancel()
  await mesh.close()
  const workload = `write → listener, ${n} sequential single-document upserts into an observed query`
  const base: BenchResult = {
    suite: 'engine',
    name: 'commit alone (no observer)',
    workload: `${n} sequential single-document upserts`,
    unit: 'ms',
    better: 'lower',
    warmup: '100 commits',
    runs: n,
    min: Math.min(...commitOnly),
    median: median(commitOnly),
    max: Math.max(...commitOnly),
  }
  const p50 = percentile(samples, 50)
  const p99 = percentile(samples, 99)
  const r50 = withBaseline(
    {
      suite: 'engine',
      name: 'observer latency p50',
      workload,
      unit: 'ms',
      better: 'lower',
      warmup: '100 commits',
      runs: n,
      min: Math.min(...samples),
      median: p50,
      max: Math.max(...samples),
      target: { description: 'p50 < 1 ms', pass: p50 < 1 },
    },
    base,
  )
  const r99: BenchResult = {
    ...r50,
    name: 'observer latency p99',
    median: p99,
    ratio: p99 / base.median,
    target: { description: 'p99 < 5 ms', pass: p99 < 5 },
  }
  return [base, r50, r99]
}

function child(args: string[]): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', 'bench/million-child.ts', ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let out = ''
    p.stdout.on('data', (c: Buffer) => {
      out += c.toString()
    })
    p.on('exit', (code) => {
      if (code === 0) resolve(JSON.parse(out.trim().split('\n').pop() as string) as Record<string, unknown>)
      else reject(new Error(`bench child ${args.join(' ')} exited with ${code}`))
    })
  })
}

async function millionDocs(ctx: BenchContext): Promise<BenchResult[]> {
  const n = ctx.quick ? 20_000 : 1_000_000
  ctx.log(`memory and selective find: ${n} documents (child processes)`)
  const empty = await child([ctx.tempDir('empty'), '0', 'empty'])
  const mesh = await child([ctx.tempDir('million'), String(n), 'mesh'])
  const plain = await child([ctx.tempDir('million-plain'), String(n), 'plain'])
  const rss = mesh.rssMB as number
  const emptyRss = empty.rssMB as number
  const rssBase: BenchResult = {
    suite: 'engine',
    name: 'resident memory of an empty store',
    workload: 'process with one open, empty store',
    unit: 'MB',
    better: 'lower',
    warmup: 'none',
    runs: 1,
    min: emptyRss,
    median: emptyRss,
    max: emptyRss,
  }
  const rssResult = withBaseline(
    {
      ...rssBase,
      name: `resident memory after loading ${n.toLocaleString('en')} documents`,
      workload: `${n} 8-field documents upserted in batches of 5,000, then gc`,
      min: rss,
      median: rss,
      max: rss,
      target: { description: '< 300 MB', pass: rss < 300 },
    },
    rssBase,
  )
  const findBase = summarise(
    {
      suite: 'engine',
      name: 'plain SQLite json_extract with an expression index',
      workload: `equality on an indexed field, 50 matches among ${n}`,
      unit: 'ms',
      better: 'lower',
      warmup: 'none',
    },
    plain.findMs as number[],
  )
  const find = withBaseline(
    summarise(
      {
        suite: 'engine',
        name: 'selective find on an indexed field',
        workload: `find({ filter: { sku } }), 50 matches among ${n}, 300 queries`,
        unit: 'ms',
        better: 'lower',
        warmup: 'none',
      },
      mesh.findMs as number[],
    ),
    findBase,
  )
  find.target = { description: 'p50 < 5 ms', pass: find.median < 5 }
  return [rssBase, rssResult, findBase, find]
}

export const engineSuite: BenchSuite = {
  name: 'engine',
  async run(ctx) {
    return [...(await upsertThroughput(ctx)), ...(await observerLatency(ctx)), ...(await millionDocs(ctx))]
  },
}
