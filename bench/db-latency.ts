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

/** Two `meshmirror peer` processes on 127.0.0.1, A listening and B linked to it, each mirroring `sales`. */
async function startPair(dir: string, extra: object) {
  const config = (name: string, own: object) => {
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
        ...extra,
        ...own,
      }),
    )
    return { db, file }
  }
  const a = config('a', { listen: { host: '127.0.0.1', port: 0 } })
  const peerA = spawnJsonChild(CLI, ['peer', '--json', '--config', a.file])
  let peerB: ReturnType<typeof spawnJsonChild> | undefined
  const stop = async () => {
    await peerB?.stop()
    await peerA.stop()
  }
  try {
    const live = (await peerA.waitFor((l) => l.event === 'live')) as { port: number }
    const b = config('b', { peers: [`ws://127.0.0.1:${live.port}`] })
    peerB = spawnJsonChild(CLI, ['peer', '--json', '--config', b.file])
    await peerB.waitFor((l) => l.event === 'status' && (l.peers as { state: string }[]).some((p) => p.state === 'live'))
    return { a: a.db, b: b.db, pids: [peerA.process.pid!, peerB.process.pid!], stop }
  } catch (error) {
    await stop()
    throw error
  }
}

async function pair(
  ctx: BenchContext,
  watch: boolean,
  writes: number,
  idle: { afterMs: number; forMs: number },
): Promise<Run> {
  const peers = await startPair(ctx.tempDir(watch ? 'dbl-watch' : 'dbl-poll'), { watchDatabase: watch })
  try {
    const writer = new Database(peers.a)
    const reader = new Database(peers.b, { readonly: true })
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
    const before = peers.pids.map(cpuMs)
    const started = performance.now()
    await new Promise((r) => setTimeout(r, idle.forMs))
    const elapsed = performance.now() - started
    const idleCpu = peers.pids.map((pid, i) => ((cpuMs(pid) - before[i]!) * 100) / elapsed)
    return { latencies, idleCpu }
  } finally {
    await peers.stop()
  }
}

/**
 * A stream of app writes: single-row inserts committed to A's file at `rate`
 * a second for `seconds`, each in its own transaction, without waiting for
 * B; B's file is read every millisecond. Each row's time from its commit in
 * A's file to its first sighting in B's, and the CPU time of both peers
 * (every thread) per 1,000 rows. `extra` is merged into both peers' config.
 */
export async function streamRun(
  dir: string,
  rate: number,
  seconds: number,
  extra: object = {},
): Promise<{ latencies: number[]; cpuPer1000: number }> {
  const peers = await startPair(dir, extra)
  try {
    const writer = new Database(peers.a)
    const reader = new Database(peers.b, { readonly: true })
    const insert = writer.prepare('INSERT INTO sales (id, till, amount) VALUES (?, ?, ?)')
    const arrived = reader.prepare('SELECT amount FROM sales WHERE amount >= ?').pluck()
    const n = Math.max(1, Math.round(rate * seconds))
    const committedAt: number[] = []
    const seenAt: number[] = new Array(n)
    let unseen = 0
    let done = false
    const reading = (async () => {
      while (!done && unseen < n) {
        const now = performance.now()
        for (const i of arrived.all(unseen) as number[]) seenAt[i] ??= now
        while (unseen < n && seenAt[unseen] !== undefined) unseen++
        await new Promise((r) => setTimeout(r, 1))
      }
    })()
    const before = peers.pids.map(cpuMs)
    const start = performance.now()
    for (let i = 0; i < n; i++) {
      // Each write on time, whether B has the ones before or not.
      const wait = start + (i * 1000) / rate - performance.now()
      if (wait >= 1) await new Promise((r) => setTimeout(r, wait))
      insert.run(`s${i}`, 'a', i)
      committedAt.push(performance.now())
    }
    const deadline = performance.now() + 30_000
    while (unseen < n && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5))
    done = true
    await reading
    if (unseen < n) throw new Error(`only ${unseen} of ${n} rows reached B within 30 s`)
    const cpu = peers.pids.reduce((sum, pid, k) => sum + cpuMs(pid) - before[k]!, 0)
    writer.close()
    reader.close()
    return { latencies: committedAt.map((t, i) => seenAt[i]! - t), cpuPer1000: (cpu / n) * 1000 }
  } finally {
    await peers.stop()
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
    // A stream of writes: what batching on the way adds while the app keeps writing.
    const rate = 200
    const seconds = ctx.quick ? 0.5 : 3
    const stream = await streamRun(ctx.tempDir('dbl-stream'), rate, seconds)
    const streamCommon = {
      suite: 'db-latency',
      workload: `${rate * seconds} single-row inserts committed at ${rate} a second into A's SQLite file without waiting for B, each until readable in B's (read every millisecond), through the same two peers with the file watch; the baseline is the same pair's isolated writes`,
      unit: 'ms',
      better: 'lower' as const,
      warmup: 'none',
    }
    for (const p of [50, 99]) {
      const limit = p === 50 ? 5 : 20
      const measured = summarise({ ...streamCommon, name: `database to database p${p}, a stream of ${rate} rows/s` }, [
        percentile(stream.latencies, p),
      ])
      const isolated = results.find((r) => r.name === `database to database p${p}, file watch`)!
      results.push({
        ...withBaseline(measured, isolated),
        target: { description: `< ${limit} ms`, pass: measured.median < limit },
      })
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
