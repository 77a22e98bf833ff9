// The same workloads on the Ditto backend and on the builtin engine, in one run:
// batched upsert throughput, disk size for 100,000 documents, observer latency.
// A suite for bench/run.ts; `npx tsx bench/ditto.bench.ts [--quick]` runs it alone.
import { openDittoStore } from '../src/ditto/index.js'
import { openBuiltinStore } from '../src/engine/open-builtin-store.js'
import { dirStats } from '../src/instance/dir-size.js'
import type { MeshStore } from '../src/mesh/mesh-store.js'
import {
  type BenchContext,
  type BenchResult,
  type BenchSuite,
  makeContext,
  percentile,
  summarise,
  withBaseline,
} from './harness.js'
import { eightFields } from './workload.js'

export const BATCH = 1000

export type Backend = { name: string; open(dir: string): Promise<MeshStore> }
/** What `load` needs of a store: a plain table can stand in. */
export type Loadable = { name: string; open(dir: string): Promise<Pick<MeshStore, 'upsert' | 'close'>> }
export const ditto: Backend = { name: 'Ditto 5.x', open: (dir) => openDittoStore({ dir, diskLogs: false }) }
export const builtin: Backend = { name: 'builtin engine', open: (dir) => openBuiltinStore({ dir }) }

/** Upserts n new documents in batches; returns docs/s and the directory's size after close. */
export async function load(ctx: BenchContext, backend: Loadable, n: number): Promise<{ rate: number; bytes: number }> {
  const dir = ctx.tempDir(backend === ditto ? 'ditto' : 'builtin')
  const mesh = await backend.open(dir)
  const t0 = performance.now()
  for (let i = 0; i < n; i += BATCH) {
    const docs = []
    for (let j = i; j < Math.min(n, i + BATCH); j++) docs.push(eightFields(j))
    await mesh.upsert('items', docs)
  }
  const rate = n / ((performance.now() - t0) / 1000)
  await mesh.close()
  return { rate, bytes: dirStats(dir).sizeBytes }
}

/** Commit-to-delivery latency of one-document upserts, in ms. */
/**
 * Write → the same store's observer, in ms: `samples` one-document upserts into an observed query,
 * each awaited until delivered, `gapMs` apart (0: back to back).
 */
export async function observerLatency(
  ctx: BenchContext,
  backend: Backend,
  samples: number,
  gapMs = 0,
): Promise<number[]> {
  const mesh = await backend.open(ctx.tempDir('latency'))
  let resolve: (() => void) | undefined
  const obs = mesh.observe({ collection: 'orders', filter: { open: true } }, () => resolve?.())
  await obs.ready
  const out: number[] = []
  for (let i = 0; i < samples; i++) {
    const delivered = new Promise<void>((r) => {
      resolve = r
    })
    const t0 = performance.now()
    await mesh.upsert('orders', [{ _id: `o${i}`, open: true, total: i }])
    await delivered
    out.push(performance.now() - t0)
    if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs))
  }
  obs.cancel()
  await mesh.close()
  return out
}

export const dittoSuite: BenchSuite = {
  name: 'ditto',
  async run(ctx) {
    const n = ctx.quick ? 20_000 : 100_000
    const runs = ctx.quick ? 1 : 3
    ctx.log(`upsert throughput and disk size: ${runs} runs of ${n} docs on each backend`)
    await load(ctx, ditto, 2_000)
    await load(ctx, builtin, 2_000)
    const d: { rate: number; bytes: number }[] = []
    const b: { rate: number; bytes: number }[] = []
    for (let r = 0; r < runs; r++) {
      d.push(await load(ctx, ditto, n))
      b.push(await load(ctx, builtin, n))
    }
    const workload = `${n} new 8-field documents, batches of ${BATCH}, one upsert per batch`
    const rate = (name: string, xs: number[]) =>
      summarise(
        {
          suite: 'ditto',
          name: `${name}: batched upsert`,
          workload,
          unit: 'docs/s',
          better: 'higher',
          warmup: '2,000 docs',
        },
        xs,
      )
    const size = (name: string, xs: number[]) =>
      summarise(
        {
          suite: 'ditto',
          name: `${name}: disk size`,
          workload: `directory after ${n} documents, closed`,
          unit: 'MB',
          better: 'lower',
          warmup: 'none',
        },
        xs.map((x) => x / 1e6),
      )
    const builtinRate = rate(
      builtin.name,
      b.map((x) => x.rate),
    )
    const builtinSize = size(
      builtin.name,
      b.map((x) => x.bytes),
    )
    const results: BenchResult[] = [
      builtinRate,
      withBaseline(
        rate(
          ditto.name,
          d.map((x) => x.rate),
        ),
        builtinRate,
      ),
      builtinSize,
      withBaseline(
        size(
          ditto.name,
          d.map((x) => x.bytes),
        ),
        builtinSize,
      ),
    ]

    const samples = ctx.quick ? 50 : 200
    ctx.log(`observer latency: ${samples} single-document upserts on each backend`)
    for (const backend of [builtin, ditto]) {
      const xs = await observerLatency(ctx, backend, samples)
      const base = {
        suite: 'ditto',
        workload: `${samples} one-document upserts into an observed query, each awaited until delivered`,
        unit: 'ms',
        better: 'lower' as const,
        warmup: 'none',
      }
      results.push(summarise({ ...base, name: `${backend.name}: observer latency p50` }, [percentile(xs, 50)]))
      results.push(summarise({ ...base, name: `${backend.name}: observer latency p99` }, [percentile(xs, 99)]))
    }
    return results
  },
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { ctx, cleanup } = makeContext(process.argv.includes('--quick'))
  try {
    for (const r of await dittoSuite.run(ctx)) {
      const ratio = r.ratio === undefined ? '' : ` (${r.ratio.toFixed(3)}× ${r.baseline?.name})`
      process.stdout.write(`${r.name}: ${r.median.toFixed(r.unit === 'docs/s' ? 0 : 2)} ${r.unit}${ratio}\n`)
    }
  } finally {
    cleanup()
  }
}
