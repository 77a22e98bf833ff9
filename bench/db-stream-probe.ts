// What the bridge's `maxBatchDelayMs` does to a stream of app writes: `npx tsx bench/db-stream-probe.ts
// [--values 0,1,2,5,10] [--rates 50,200,1000] [--seconds 3] [--rounds 2]`.
//
// Two `meshmirror peer` processes on 127.0.0.1, as `db-latency` runs them (file watch, encrypted link; see
// its `streamRun`). An app commits single-row inserts to A's SQLite file at each rate, each in its own
// transaction, without waiting for B; B's file is read every millisecond. For each rate and value: p50 and
// p99 from a row's commit in A's file to its being readable in B's, and the CPU time of both peers (every
// thread) per 1,000 rows. The values run in a different order in each round, so that a drift of the
// machine's speed falls on all of them.
import { mkdtempSync, rmSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { streamRun } from './db-latency.js'
import { percentile } from './harness.js'

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1]! : fallback
}
const VALUES = arg('values', '0,1,2,5,10').split(',').map(Number)
const RATES = arg('rates', '50,200,1000').split(',').map(Number)
const SECONDS = Number(arg('seconds', '3'))
const ROUNDS = Number(arg('rounds', '2'))

interface Sample {
  p50: number
  p99: number
  cpu: number
}

async function once(dir: string, rate: number, maxBatchDelayMs: number): Promise<Sample> {
  const run = await streamRun(dir, rate, SECONDS, { settings: { maxBatchDelayMs } })
  return { p50: percentile(run.latencies, 50), p99: percentile(run.latencies, 99), cpu: run.cpuPer1000 }
}

const root = mkdtempSync(join(tmpdir(), 'mm-db-stream-'))
try {
  const samples = new Map<string, Sample[]>()
  for (let round = 0; round < ROUNDS; round++) {
    for (const rate of RATES) {
      for (const v of round % 2 === 0 ? VALUES : [...VALUES].reverse()) {
        const dir = join(root, `${round}-${rate}-${v}`)
        const s = await once(mkdtempSync(`${dir}-`), rate, v)
        samples.set(`${rate} ${v}`, [...(samples.get(`${rate} ${v}`) ?? []), s])
        process.stderr.write(
          `round ${round + 1} rate ${rate}/s maxBatchDelayMs ${v}: p50 ${s.p50.toFixed(2)} ms, p99 ${s.p99.toFixed(2)} ms, ` +
            `CPU of both peers per 1,000 rows ${s.cpu.toFixed(0)} ms (load ${loadavg()[0]!.toFixed(1)})\n`,
        )
      }
    }
  }
  const median = (xs: number[]) => percentile(xs, 50)
  process.stdout.write(
    '| rows/s | maxBatchDelayMs | p50 | p99 | CPU of both peers per 1,000 rows |\n|---|---|---|---|---|\n',
  )
  for (const rate of RATES) {
    for (const v of VALUES) {
      const s = samples.get(`${rate} ${v}`)!
      process.stdout.write(
        `| ${rate} | ${v} | ${median(s.map((x) => x.p50)).toFixed(2)} ms | ${median(s.map((x) => x.p99)).toFixed(2)} ms | ${median(s.map((x) => x.cpu)).toFixed(0)} ms |\n`,
      )
    }
  }
} finally {
  rmSync(root, { recursive: true, force: true })
}
