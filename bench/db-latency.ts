// Database to database: a row an app commits to till A's SQLite file, until
// it is readable in till B's, through two `meshmirror peer` processes on
// 127.0.0.1; and the CPU a live peer spends with nothing happening. The
// baseline is the same pair finding the app's writes by polling alone
// (`watchDatabase: false`), measured in the same run. Next to them, the Ditto
// SDK's own write → local observer latency in the same run: the floor of the
// seed's stack, in which a row reaches another till only after Ditto's
// observer fires on it.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { spawnJsonChild } from './compare-child.js'
import { ditto, observerLatency } from './ditto.bench.js'
import { type BenchContext, type BenchResult, type BenchSuite, percentile, summarise, withBaseline } from './harness.js'

const CLI = 'src/cli/main.ts'
const SCHEMA = 'CREATE TABLE sales (id TEXT PRIMARY KEY, till TEXT NOT NULL, amount INTEGER NOT NULL)'

interface Run {
  latencies: number[]
  /** Percent of one core each peer used while idle. */
  idleCpu: number[]
}

/** CPU time of every thread of a process so far, in ms (from /proc: nanoseconds, not 10 ms ticks). */
function cpuMs(pid: number): number {
  let ns = 0
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[0])
    } catch {
      // A thread that ended meanwhile.
    }
  }
  return ns / 1e6
}

async function pair(
  ctx: BenchContext,
  watch: boolean,
  writes: number,
  idle: { afterMs: number; forMs: number },
): Promise<Run> {
  const dir = ctx.tempDir(watch ? 'dbl-watch' : 'dbl-poll')
  const config = (name: string, extra: object) => {
    const db = join(dir, `${name}.db`)
    const d = new Database(db)
    d.exec(SCHEMA)
    d.close()
    const file = join(dir, `${name}.json`)
    writeFileSync(
      file,
      JSON.stringify({
        database: db,
        mesh: { dir: join(dir, `${name}-mesh`) },
        meshId: 'latency',
        secret: 'latency-bench-secret',
        tables: [{ table: 'sales' }],
        watchDatabase: watch,
        ...extra,
      }),
    )
    return { db, file }
  }
  const a = config('a', { listen: { host: '127.0.0.1', port: 0 } })
  const peerA = spawnJsonChild(CLI, ['peer', '--json', '--config', a.file])
  const live = (await peerA.waitFor((l) => l.event === 'live')) as { port: number }
  const b = config('b', { peers: [`ws://127.0.0.1:${live.port}`] })
  const peerB = spawnJsonChild(CLI, ['peer', '--json', '--config', b.file])
  try {
    await peerB.waitFor((l) => l.event === 'status' && (l.peers as { state: string }[]).some((p) => p.state === 'live'))
    const writer = new Database(a.db)
    const reader = new Database(b.db, { readonly: true })
    const seen = reader.prepare('SELECT 1 FROM sales WHERE id = ?').pluck()
    const insert = writer.prepare('INSERT INTO sales (id, till, amount) VALUES (?, ?, ?)')
    const latencies: number[] = []
    for (let i = 0; i < writes + 5; i++) {
      const id = `s${i}`
      insert.run(id, 'a', i)
      const t0 = performance.now()
      // Read B's file every millisecond until the row is there.
      for (;;) {
        if (seen.get(id)) break
        if (performance.now() - t0 > 10_000) throw new Error(`row ${id} did not reach B within 10 s`)
        await new Promise((r) => setTimeout(r, 1))
      }
      // The first five warm the path (connections, statements, JIT).
      if (i >= 5) latencies.push(performance.now() - t0)
      await new Promise((r) => setTimeout(r, 50))
    }
    writer.close()
    reader.close()
    // Idle: nothing written. For some seconds after a burst of writes each process's heap is
    // collected (V8 does it once the process goes quiet: 50-130 ms of CPU at a time, on its
    // helper threads), whatever finds the app's writes; the steady state comes after.
    await new Promise((r) => setTimeout(r, idle.afterMs))
    const pids = [peerA.process.pid!, peerB.process.pid!]
    const before = pids.map(cpuMs)
    const started = performance.now()
    await new Promise((r) => setTimeout(r, idle.forMs))
    const elapsed = performance.now() - started
    const idleCpu = pids.map((pid, i) => ((cpuMs(pid) - before[i]!) * 100) / elapsed)
    return { latencies, idleCpu }
  } finally {
    await peerB.stop()
    await peerA.stop()
  }
}

export const dbLatencySuite: BenchSuite = {
  name: 'db-latency',
  async run(ctx) {
    const writes = ctx.quick ? 20 : 200
    const idleWindow = ctx.quick ? { afterMs: 1_000, forMs: 1_000 } : { afterMs: 20_000, forMs: 10_000 }
    const poll = await pair(ctx, false, writes, idleWindow)
    const watch = await pair(ctx, true, writes, idleWindow)
    const workload = `${writes} single-row inserts 50 ms apart into A's SQLite file, until readable in B's, through two meshmirror peer processes on 127.0.0.1`
    const common = { suite: 'db-latency', workload, unit: 'ms', better: 'lower' as const, warmup: '5 inserts' }
    // The Ditto SDK alone, one process, no network: its commit, then its observer on the same store.
    const dittoSamples = ctx.quick ? 20 : 200
    const floor = await observerLatency(ctx, ditto, dittoSamples, 50)
    const dittoCommon = {
      suite: 'db-latency',
      workload: `${dittoSamples} one-document upserts 50 ms apart into an observed query of one Ditto store (meshmirror's Ditto backend), each awaited until its observer fires; the seed's stack cannot deliver a row to another till faster`,
      unit: 'ms',
      better: 'lower' as const,
      warmup: 'none',
    }
    const results: BenchResult[] = []
    for (const p of [50, 99]) {
      const base = summarise({ ...common, name: `database to database p${p}, polling only` }, [
        percentile(poll.latencies, p),
      ])
      const limit = p === 50 ? 5 : 20
      const measured = summarise({ ...common, name: `database to database p${p}, file watch` }, [
        percentile(watch.latencies, p),
      ])
      const dittoFloor = summarise({ ...dittoCommon, name: `Ditto SDK: write to local observer p${p}` }, [
        percentile(floor, p),
      ])
      results.push(
        base,
        {
          ...withBaseline(measured, base),
          target: { description: `< ${limit} ms`, pass: measured.median < limit },
        },
        withBaseline(dittoFloor, measured),
      )
    }
    const idle = (run: Run, name: string) =>
      summarise(
        {
          suite: 'db-latency',
          name,
          workload: `CPU of a live peer with nothing written, over ${idleWindow.forMs / 1000} s from ${idleWindow.afterMs / 1000} s after the last write (once the heap collections that follow the writes are done), each of the two peers`,
          unit: '% of a core',
          better: 'lower',
          warmup: `${idleWindow.afterMs / 1000} s after the last write`,
        },
        run.idleCpu,
      )
    const idlePoll = idle(poll, 'idle CPU of a peer, polling only')
    const idleWatch = idle(watch, 'idle CPU of a peer, file watch')
    results.push(idlePoll, {
      ...withBaseline(idleWatch, idlePoll),
      target: { description: 'no more than polling only', pass: idleWatch.median <= idlePoll.median * 1.1 + 0.1 },
    })
    return results
  },
}
