// Replication comparison between two processes over loopback: catch-up time
// for N documents into an empty replica, and the one-way latency of single
// writes once caught up. The builtin engine's replication (WebSocket, version
// vectors) against Yjs synced with the y-websocket protocol (y-protocols sync
// over a `ws` socket, see compare-yjs-sync.ts). Same documents on both.
import { join } from 'node:path'
import { spawnJsonChild } from './compare-child.js'
import { sane } from './compare-sane.js'
import { type BenchContext, type BenchResult, type BenchSuite, percentile, summarise, withBaseline } from './harness.js'

const PEER = 'bench/compare-peer.ts'
const BUILTIN = { id: 'builtin', name: 'builtin engine (meshmirror replication)' }
const YJS = { id: 'yjs', name: 'Yjs (y-websocket sync protocol)' }
// What the default links' encryption costs: the builtin engine again with plain links, run between
// the two others, when BENCH_PLAIN_LINKS=1. Informational: the targets stay on the default row.
const PLAIN = { id: 'builtin-plain', name: 'builtin engine, plain links (insecure: true), informational' }
const ENGINES = process.env.BENCH_PLAIN_LINKS === '1' ? [BUILTIN, PLAIN, YJS] : [BUILTIN, YJS]

interface Run {
  catchUpMs: number
  p50: number
  p99: number
}

async function once(ctx: BenchContext, engine: string, n: number, pings: number): Promise<Run> {
  const dir = ctx.tempDir(`repl-${engine}`)
  const server = spawnJsonChild(PEER, [engine, 'serve', join(dir, 'a'), String(n), String(pings)])
  let client: ReturnType<typeof spawnJsonChild> | undefined
  try {
    const ready = await server.waitFor((l) => l.ready === true, 120_000)
    client = spawnJsonChild(PEER, [
      engine,
      'fetch',
      join(dir, 'b'),
      String(n),
      String(pings),
      `ws://127.0.0.1:${ready.port as number}`,
    ])
    const caught = await client.waitFor((l) => typeof l.caughtUp === 'number', 180_000)
    const lat = (await server.waitFor((l) => Array.isArray(l.latencies), 60_000)).latencies as number[]
    return { catchUpMs: caught.caughtUp as number, p50: percentile(lat, 50), p99: percentile(lat, 99) }
  } finally {
    await client?.stop()
    await server.stop()
  }
}

export const compareReplicationSuite: BenchSuite = {
  name: 'compare-replication',
  async run(ctx) {
    const n = ctx.quick ? 2_000 : 100_000
    // A p99 of 200 writes is their second slowest, moved by one or two writes the machine's scheduler held back;
    // 1,000 leave ten above it (each run's p99 spread 2.0-6.5 ms over three runs of 200 on a quiet machine).
    const pings = ctx.quick ? 20 : 1_000
    const runs = ctx.quick ? 1 : 3
    ctx.log(`replication: ${runs} runs per engine of ${n} documents, then ${pings} single-document writes`)
    const warm = ctx.quick ? 500 : 5_000
    const measured = new Map<string, Run[]>()
    const failed = new Map<string, string>()
    for (const e of ENGINES) {
      try {
        await once(ctx, e.id, warm, 5)
      } catch (error) {
        failed.set(e.id, String(error))
      }
    }
    for (let r = 0; r < runs; r++) {
      for (const e of ENGINES) {
        if (failed.has(e.id)) continue
        try {
          const list = measured.get(e.id) ?? []
          list.push(await once(ctx, e.id, n, pings))
          measured.set(e.id, list)
        } catch (error) {
          failed.set(e.id, String(error))
          measured.delete(e.id)
        }
      }
    }
    for (const [id, message] of failed) ctx.log(`replication: ${id} failed: ${message}`)
    const warmup = `one exchange of ${warm} documents and 5 writes per engine`
    const results: BenchResult[] = []
    const base: Partial<Record<keyof Run, BenchResult>> = {}
    const figure = (name: string, key: keyof Run, xs: Run[], workload: string) => {
      const r = summarise(
        { suite: 'compare-replication', name, workload, unit: 'ms', better: 'lower', warmup },
        xs.map((x) => x[key]),
      )
      const b = base[key]
      if (!b) base[key] = r
      return b ? withBaseline(r, b) : r
    }
    for (const e of ENGINES) {
      const xs = measured.get(e.id)
      if (!xs) continue
      results.push(
        figure(
          `${e.name}: catch-up of ${n.toLocaleString('en')} documents`,
          'catchUpMs',
          xs,
          `a process holding ${n} 8-field documents, and an empty one that dials it over 127.0.0.1: from the empty side's open to it holding all ${n}`,
        ),
        figure(
          `${e.name}: write-to-peer latency p50`,
          'p50',
          xs,
          `after catch-up, ${pings} single-document writes 10 ms apart on one process; from the write to the other process's observer seeing it (same machine, same clock); median over runs of each run's p50`,
        ),
        figure(
          `${e.name}: write-to-peer latency p99`,
          'p99',
          xs,
          `the same ${pings} writes; median over runs of each run's p99`,
        ),
      )
    }
    // The targets of the builtin engine, against Yjs in the same run.
    const find = (engine: string, what: string) =>
      results.find((r) => r.name.startsWith(`${engine}:`) && r.name.includes(what))
    const ours = BUILTIN.name
    const yjs = YJS.name
    const catchUp = find(ours, 'catch-up')
    const yCatchUp = find(yjs, 'catch-up')
    if (catchUp && yCatchUp)
      catchUp.target = { description: 'faster than Yjs in the same run', pass: catchUp.median < yCatchUp.median }
    const p50 = find(ours, 'p50')
    const yP50 = find(yjs, 'p50')
    if (p50 && yP50)
      p50.target = { description: "<= Yjs's p50 and < 1 ms", pass: p50.median <= yP50.median && p50.median < 1 }
    const p99 = find(ours, 'p99')
    if (p99) p99.target = { description: '< 5 ms', pass: p99.median < 5 }
    return sane(results)
  },
}
