// What the bridge's `maxBatchDelayMs` does to a stream of app writes: `npx tsx bench/db-stream-probe.ts
// [--values 0,1,2,5,10] [--rates 50,200,1000] [--seconds 3] [--rounds 2]`.
//
// Two `meshmirror peer` processes on 127.0.0.1, as `db-latency` runs them (file watch, encrypted link; see
// its `streamRun`). An app commits single-row inserts to A's SQLite file at each rate, each in its own
// transaction, without waiting for B; B's file is read every millisecond. For each rate and value: p50 and
// p99 from a row's commit in A's file to its being readable in B's, and the CPU time of both peers (every
// thread) per 1,000 rows. The values run in a different order in each round, so that a drift of the
// machine's speed falls on all of them.
import { streamRun } from './db-latency.js'
import { percentile } from './harness.js'
import { cliArg, ms0, ms2, sweep } from './sweep.js'

const SECONDS = Number(cliArg('seconds', '3'))

interface Sample {
  p50: number
  p99: number
  cpu: number
}

await sweep<Sample>({
  setting: 'maxBatchDelayMs',
  per: 'rows',
  values: '0,1,2,5,10',
  rates: '50,200,1000',
  async run(dir, rate, maxBatchDelayMs) {
    const run = await streamRun(dir, rate, SECONDS, { settings: { maxBatchDelayMs } })
    return { p50: percentile(run.latencies, 50), p99: percentile(run.latencies, 99), cpu: run.cpuPer1000 }
  },
  columns: [
    { head: 'p50', of: (s) => s.p50, format: ms2 },
    { head: 'p99', of: (s) => s.p99, format: ms2 },
    { head: 'CPU of both peers per 1,000 rows', of: (s) => s.cpu, format: ms0 },
  ],
})
