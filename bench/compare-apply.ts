// Remote apply into the app's SQLite while another process keeps writing to
// the same database: meshmirror's default policy, the seed's policy (batches
// of 5, 100 ms apart, a transaction per row) with and without its delays, and
// a naive per-row writer (SQLite's default busy timeout of 0, no retry). The
// same policies without a competing writer are the bridge suite's figures.
import { join } from 'node:path'
import Database from 'better-sqlite3'
import type { SyncSettings } from '../src/bridge/settings.js'
import { applied, counters, DDL, device, doc, primed, SEED_APPLY, transfer, until, upsertAll } from './bridge.bench.js'
import { spawnJsonChild } from './compare-child.js'
import { sane } from './compare-sane.js'
import { type BenchContext, type BenchResult, type BenchSuite, summarise, withBaseline } from './harness.js'

/** The competing writer holds each write transaction this long, then pauses this long. */
const HOLD_MS = 100
const GAP_MS = 100
const COMPETITOR = `another process writing to the same database, holding each write transaction ${HOLD_MS} ms with ${GAP_MS} ms pauses`

interface Outcome {
  /** Documents (rows) per second. */
  rate: number
  /** Failures that reported the database as locked (SQLITE_BUSY). */
  locked: number
  /** Times a write waited for the other writer and retried. */
  waits: number
  /** Rows left with the old content. */
  lost: number
}

const isLocked = (error: unknown) => /database is locked|SQLITE_BUSY/i.test(String(error))

async function withCompetitor<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const writer = spawnJsonChild('bench/compare-writer.ts', [file, String(HOLD_MS), String(GAP_MS)])
  try {
    await writer.waitFor((l) => l.ready === true, 30_000)
    return await fn()
  } finally {
    await writer.stop()
  }
}

/** A device with `n` mirrored rows receives `n` changed documents through the bridge, with `settings`, while the competitor writes. */
async function bridgeRun(ctx: BenchContext, n: number, settings: SyncSettings): Promise<Outcome> {
  const { src, dir } = await primed(ctx, n)
  const d = await device(dir, settings, false)
  let locked = 0
  d.registry.on('error', (e) => {
    if (isLocked(e.error)) locked++
  })
  await d.registry.start()
  const outcome = await withCompetitor(join(dir, 'app.db'), async () => {
    await upsertAll(src, n, 1)
    await transfer(src, d.mesh)
    const t0 = performance.now()
    await until(() => applied(d) === n)
    const rate = n / ((performance.now() - t0) / 1000)
    return { rate, locked, waits: d.registry.coordinator.metrics().busyRetries, lost: 0 }
  })
  await d.close()
  await src.close()
  return outcome
}

/** Writes `n` changed rows one autocommit upsert at a time, without a busy timeout or retry, while the competitor writes. */
async function naiveRun(ctx: BenchContext, n: number): Promise<Outcome> {
  const file = join(ctx.tempDir('capply-naive'), 'app.db')
  const app = new Database(file, { timeout: 0 })
  app.pragma('journal_mode = WAL')
  app.exec(DDL)
  const row = (i: number, version: number) => counters.fromDocument(doc(i, version))!
  const cols = Object.keys(row(0, 0))
  const upsert = app.prepare(
    `INSERT INTO counters (${cols.join(', ')}) VALUES (${cols.map((c) => `@${c}`).join(', ')}) ON CONFLICT (id) DO UPDATE SET ${cols
      .slice(1)
      .map((c) => `${c} = excluded.${c}`)
      .join(', ')}`,
  )
  app.transaction(() => {
    for (let i = 0; i < n; i++) upsert.run(row(i, 0))
  })()
  const outcome = await withCompetitor(file, async () => {
    let locked = 0
    const t0 = performance.now()
    for (let i = 0; i < n; i++) {
      try {
        upsert.run(row(i, 1))
      } catch (error) {
        if (!isLocked(error)) throw error
        locked++
      }
      // Yield now and then, as an app's async sync loop would.
      if (i % 5 === 4) await new Promise((r) => setImmediate(r))
    }
    // Rows that failed are not written: only the written ones count.
    const rate = (n - locked) / ((performance.now() - t0) / 1000)
    return { rate, locked, waits: 0, lost: locked }
  })
  app.close()
  return outcome
}

export const compareApplySuite: BenchSuite = {
  name: 'compare-apply',
  async run(ctx) {
    const n = ctx.quick ? 2_000 : 50_000
    const seedN = ctx.quick ? 50 : 500
    const fastN = ctx.quick ? 2_000 : 20_000
    const runs = ctx.quick ? 1 : 3
    ctx.log(
      `remote apply with a competing writer: ${runs} runs; meshmirror ${n} documents, seed policy ${seedN}, without delays and naive ${fastN}`,
    )
    await bridgeRun(ctx, ctx.quick ? 200 : 2_000, {})
    const policies = [
      {
        name: "seed's policy (5 per batch, 100 ms apart, a transaction per row)",
        size: seedN,
        run: () => bridgeRun(ctx, seedN, SEED_APPLY),
      },
      { name: 'meshmirror default', size: n, run: () => bridgeRun(ctx, n, {}) },
      {
        name: "seed's policy without the delays",
        size: fastN,
        run: () => bridgeRun(ctx, fastN, { ...SEED_APPLY, delayBetweenBatches: 0 }),
      },
      { name: 'naive per-row writer (busy timeout 0, no retry)', size: fastN, run: () => naiveRun(ctx, fastN) },
    ]
    const outcomes = policies.map(() => [] as Outcome[])
    for (let r = 0; r < runs; r++) {
      for (const [i, p] of policies.entries()) outcomes[i]!.push(await p.run())
    }
    const warmup = `one meshmirror run of ${ctx.quick ? 200 : 2_000} documents`
    const results: BenchResult[] = []
    let base: BenchResult | undefined
    for (const [i, p] of policies.entries()) {
      const naive = p.run === policies[3]!.run
      const workload = `${p.size} changed documents applied to existing rows of the app's SQLite table${
        naive
          ? ' as autocommit upserts, one per row (rows written per second; failed rows not counted)'
          : ' through the bridge'
      }, while ${COMPETITOR}`
      const rate = summarise(
        {
          suite: 'compare-apply',
          name: `remote apply with a competing writer, ${p.name}`,
          workload,
          unit: 'docs/s',
          better: 'higher',
          warmup,
        },
        outcomes[i]!.map((o) => o.rate),
      )
      base ??= rate
      results.push(rate === base ? rate : withBaseline(rate, base))
    }
    for (const [i, p] of policies.entries()) {
      const locked = outcomes[i]!.map((o) => o.locked)
      const lost = outcomes[i]!.map((o) => o.lost)
      results.push(
        summarise(
          {
            suite: 'compare-apply',
            name: `"database is locked" errors with a competing writer, ${p.name}: ${
              Math.max(...locked) === 0 ? 'none' : `yes, ${Math.max(...lost)} rows left unwritten at worst`
            }`,
            workload: `errors reporting SQLITE_BUSY while ${p.size} changed documents were applied and ${COMPETITOR}`,
            unit: 'errors',
            better: 'lower',
            warmup,
          },
          locked,
        ),
      )
    }
    results.push(
      summarise(
        {
          suite: 'compare-apply',
          name: 'meshmirror default: waits for the competing writer (retried, not errors)',
          workload: `times an apply transaction found the database busy and retried with backoff, ${n} documents, while ${COMPETITOR}`,
          unit: 'waits',
          better: 'lower',
          warmup,
        },
        outcomes[1]!.map((o) => o.waits),
      ),
    )
    return sane(results)
  },
}
