// What the link's `coalesceMs` does to a stream of live writes: `npx tsx bench/coalesce-probe.ts
// [--values 0,1,2,5,10] [--rates 100,1000,5000] [--rounds 2]`.
//
// Two processes of `bench/compare-peer.ts` (the builtin engine, default encrypted links, over loopback): one
// writes single-document commits at each rate without waiting for the one before, the other times each
// from the write to its observer (same clock). For each rate and value: p50 and p99 of that latency, and
// the CPU time of each process over the stream, per 1,000 writes. The values run in a different order in
// each round, so that a drift of the machine's speed falls on all of them.
import { mkdtempSync, rmSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnJsonChild } from './compare-child.js'
import { percentile } from './harness.js'

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1]! : fallback
}
const VALUES = arg('values', '0,1,2,5,10').split(',').map(Number)
const RATES = arg('rates', '100,1000,5000').split(',').map(Number)
const ROUNDS = Number(arg('rounds', '2'))
/** About two to five seconds of writes at each rate. */
const writesAt = (rate: number) => Math.min(10_000, Math.max(500, rate * 2))

interface Sample {
  p50: number
  p99: number
  senderCpu: number
  receiverCpu: number
}

async function once(dir: string, rate: number, coalesceMs: number): Promise<Sample> {
  const m = writesAt(rate)
  process.env.BENCH_PING_RATE = String(rate)
  process.env.BENCH_COALESCE_MS = String(coalesceMs)
  const server = spawnJsonChild('bench/compare-peer.ts', ['builtin', 'serve', join(dir, 'a'), '100', String(m)])
  let client: ReturnType<typeof spawnJsonChild> | undefined
  try {
    const ready = await server.waitFor((l) => l.ready === true, 60_000)
    client = spawnJsonChild('bench/compare-peer.ts', [
      'builtin',
      'fetch',
      join(dir, 'b'),
      '100',
      String(m),
      `ws://127.0.0.1:${ready.port as number}`,
    ])
    const got = await server.waitFor((l) => Array.isArray(l.latencies), 120_000)
    const sent = await client.waitFor((l) => typeof l.cpuMs === 'number', 120_000)
    const lat = got.latencies as number[]
    return {
      p50: percentile(lat, 50),
      p99: percentile(lat, 99),
      senderCpu: ((sent.cpuMs as number) / m) * 1000,
      receiverCpu: ((got.cpuMs as number) / m) * 1000,
    }
  } finally {
    await client?.stop()
    await server.stop()
  }
}

const root = mkdtempSync(join(tmpdir(), 'mm-coalesce-'))
try {
  const samples = new Map<string, Sample[]>()
  for (let round = 0; round < ROUNDS; round++) {
    for (const rate of RATES) {
      const order = round % 2 === 0 ? VALUES : [...VALUES].reverse()
      for (const v of order) {
        const s = await once(join(root, `${round}-${rate}-${v}`), rate, v)
        const key = `${rate} ${v}`
        samples.set(key, [...(samples.get(key) ?? []), s])
        process.stderr.write(
          `round ${round + 1} rate ${rate}/s coalesceMs ${v}: p50 ${s.p50.toFixed(2)} ms, p99 ${s.p99.toFixed(2)} ms, ` +
            `CPU per 1,000 writes ${s.senderCpu.toFixed(0)} + ${s.receiverCpu.toFixed(0)} ms (load ${loadavg()[0]!.toFixed(1)})\n`,
        )
      }
    }
  }
  const median = (xs: number[]) => percentile(xs, 50)
  process.stdout.write(
    '| writes/s | coalesceMs | p50 | p99 | sender CPU per 1,000 writes | receiver CPU per 1,000 writes |\n|---|---|---|---|---|---|\n',
  )
  for (const rate of RATES) {
    for (const v of VALUES) {
      const s = samples.get(`${rate} ${v}`)!
      process.stdout.write(
        `| ${rate} | ${v} | ${median(s.map((x) => x.p50)).toFixed(2)} ms | ${median(s.map((x) => x.p99)).toFixed(2)} ms | ` +
          `${median(s.map((x) => x.senderCpu)).toFixed(0)} ms | ${median(s.map((x) => x.receiverCpu)).toFixed(0)} ms |\n`,
      )
    }
  }
} finally {
  rmSync(root, { recursive: true, force: true })
}
