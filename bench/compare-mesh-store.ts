// Mesh store comparison: batched upsert throughput and disk size for the same
// 8-field documents on the builtin engine, the Ditto SDK's local store, and a
// plain better-sqlite3 JSON table (the ceiling every ratio is taken against).
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { sane } from './compare-sane.js'
import { BATCH, builtin, ditto, type Loadable, load } from './ditto.bench.js'
import { type BenchResult, type BenchSuite, summarise, withBaseline } from './harness.js'

/** One table of JSON text keyed by id, WAL, synchronous=NORMAL like the builtin engine; an upsert per document. */
export const plainJsonTable: Loadable = {
  name: 'plain better-sqlite3 JSON table',
  async open(dir) {
    const db = new Database(join(dir, 'plain.sqlite'))
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = NORMAL')
    db.exec(
      'CREATE TABLE IF NOT EXISTS docs (collection TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (collection, id))',
    )
    const put = db.prepare(
      'INSERT INTO docs (collection, id, doc) VALUES (?, ?, ?) ON CONFLICT (collection, id) DO UPDATE SET doc = excluded.doc',
    )
    const write = db.transaction((collection: string, docs: readonly { _id?: unknown }[]) => {
      for (const d of docs) put.run(collection, String(d._id), JSON.stringify(d))
    })
    return {
      async upsert(collection, docs) {
        write(collection, docs)
        return { changed: docs.map((d) => String(d._id)), unchanged: [] }
      },
      async close() {
        db.close()
      },
    }
  },
}

export const compareMeshStoreSuite: BenchSuite = {
  name: 'compare-mesh-store',
  async run(ctx) {
    const n = ctx.quick ? 2_000 : 100_000
    const runs = ctx.quick ? 1 : 3
    const backends = [plainJsonTable, builtin, ditto]
    ctx.log(`mesh store: ${runs} runs of ${n} documents on each of ${backends.map((b) => b.name).join(', ')}`)
    for (const b of backends) await load(ctx, b, ctx.quick ? 200 : 2_000)
    const rates = backends.map(() => [] as number[])
    const sizes = backends.map(() => [] as number[])
    // Interleaved, so that drift in the machine's load hits every backend alike.
    for (let r = 0; r < runs; r++) {
      for (const [i, b] of backends.entries()) {
        const { rate, bytes } = await load(ctx, b, n)
        rates[i]!.push(rate)
        sizes[i]!.push(bytes / 1e6)
      }
    }
    const warmup = `one load of ${ctx.quick ? 200 : 2_000} documents per store`
    const rate = (i: number) =>
      summarise(
        {
          suite: 'compare-mesh-store',
          name: `${backends[i]!.name}: batched upsert`,
          workload: `${n} new 8-field documents, batches of ${BATCH}, one upsert call per batch`,
          unit: 'docs/s',
          better: 'higher',
          warmup,
        },
        rates[i]!,
      )
    const size = (i: number) =>
      summarise(
        {
          suite: 'compare-mesh-store',
          name: `${backends[i]!.name}: disk size`,
          workload: `the store's directory after loading ${n} 8-field documents and closing`,
          unit: 'MB',
          better: 'lower',
          warmup,
        },
        sizes[i]!,
      )
    const results: BenchResult[] = []
    const baseRate = rate(0)
    const baseSize = size(0)
    results.push(baseRate, ...backends.slice(1).map((_, k) => withBaseline(rate(k + 1), baseRate)))
    results.push(baseSize, ...backends.slice(1).map((_, k) => withBaseline(size(k + 1), baseSize)))
    return sane(results)
  },
}
