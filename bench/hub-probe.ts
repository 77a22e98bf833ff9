// Where the hub's fan-out latency goes: `npx tsx bench/hub-probe.ts [--shops 10] [--tills 5] [--seconds 3] [--rate 1000]
// [--rounds 1] [--settle 0] [--variants '[{"applySpacingMs":0},{}]']`.
//
// The hub bench suite's fleet and fan-out (stores in this process, each with its own NATS connection, one
// local nats-server), with each document timed at every step: the write committed on the first till, its
// write to the hub sent and acknowledged, the server forwarding it (a plain subscriber in a process of its
// own, on its own event loop), each other till's watch handing it over, its batch committed there, and
// the observer. Stalls of this process's event loop and its garbage collections are recorded beside them,
// so a slow document can be put down to the step, and the step to the server or to this process.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { PerformanceObserver, performance } from 'node:perf_hooks'
import { startDemoHub } from '../src/demo/hub-server.js'
import { openBuiltinStore } from '../src/engine/open-builtin-store.js'
import type { BuiltinMesh } from '../src/engine/types.js'
import { type HubLink, startHubLink, traceHubLink } from '../src/hub/hub-link.js'
import type { HubOptions } from '../src/hub/hub-options.js'
import { percentile } from './harness.js'

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}
const SHOPS = arg('shops', 10)
const TILLS = arg('tills', 5)
const SECONDS = arg('seconds', 3)
/** Writes a second on the shop's first till. */
const RATE = arg('rate', 1000)
const INGEST = arg('ingest', 10_000)
/** Milliseconds to wait before each fan-out (after the links of a variant have started and caught up). */
const SETTLE = arg('settle', 0)

const dirs: string[] = []
const tempDir = (p: string) => {
  const d = mkdtempSync(join(tmpdir(), `mm-probe-${p}-`))
  dirs.push(d)
  return d
}
/** Wall-clock milliseconds with sub-millisecond precision: comparable across processes. */
const wall = () => performance.timeOrigin + performance.now()

// ---- this process's stalls and collections
const stalls: { start: number; ms: number }[] = []
let last = wall()
const tick = setInterval(() => {
  const now = wall()
  if (now - last > 15) stalls.push({ start: last, ms: now - last - 5 })
  last = now
}, 5)
const gcs: { start: number; ms: number; kind: number }[] = []
/** Round trips of the plain subscriber's connection to the server over 20 ms, in the last fan-out. */
let serverSlow: [number, number][] = []
new PerformanceObserver((l) => {
  for (const e of l.getEntries())
    gcs.push({
      start: performance.timeOrigin + e.startTime,
      ms: e.duration,
      kind: (e as unknown as { detail?: { kind: number } }).detail?.kind ?? 0,
    })
}).observe({ entryTypes: ['gc'] })

interface Outside {
  /** When the server forwarded each write, by subject. */
  seen: Record<string, number>
  /** Round trips to the server over 20 ms: [start, ms]. */
  slow: [number, number][]
}

/**
 * A plain NATS subscriber in a process of its own: when the server forwarded
 * each write, and when the server answered its own pings late.
 */
function outsider(
  url: string,
  subject: string,
): { child: ChildProcess; ready: Promise<void>; result: Promise<Outside> } {
  const code = `
    import { connect } from '@nats-io/transport-node'
    const nc = await connect({ servers: ${JSON.stringify(url)} })
    const seen = {}
    nc.subscribe(${JSON.stringify(subject)}, { callback: (_e, m) => { seen[m.subject] ??= performance.timeOrigin + performance.now() } })
    await nc.flush()
    // Round trips to the server every 5 ms: the spans it answered late.
    const slow = []
    let running = true
    const pinging = (async () => {
      while (running) {
        const t = performance.timeOrigin + performance.now()
        await nc.flush()
        const ms = performance.timeOrigin + performance.now() - t
        if (ms > 20) slow.push([t, ms])
        await new Promise((r) => setTimeout(r, 5))
      }
    })()
    process.stdout.write('ready\\n')
    process.stdin.on('data', async () => { running = false; await pinging; await nc.close(); process.stdout.write(JSON.stringify({ seen, slow }) + '\\n'); process.exit(0) })
  `
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['pipe', 'pipe', 'inherit'] })
  let out = ''
  let readyResolve: () => void
  const ready = new Promise<void>((r) => (readyResolve = r))
  const result = new Promise<Outside>((resolve) => {
    child.stdout!.on('data', (d) => {
      out += String(d)
      if (out.startsWith('ready\n')) {
        readyResolve()
        const rest = out.slice(6)
        if (rest.endsWith('\n')) resolve(JSON.parse(rest) as Outside)
      }
    })
  })
  return { child, ready, result }
}

async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error(`probe: timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

function whenHolding(mesh: BuiltinMesh, collection: string, n: number): Promise<void> {
  return new Promise((resolve) => {
    let held = 0
    const obs = mesh.observe(
      { collection },
      (c) => {
        held += c.inserted.length - c.removed.length
        if (held < n) return
        obs.cancel()
        resolve()
      },
      { initial: true },
    )
  })
}

interface Doc {
  t0: number
  commit?: number
  publish?: number
  ack?: number
  server?: number
  deliver: Map<number, number>
  apply: Map<number, number>
  observe: Map<number, number>
}

const idOf = (key: string) => key.slice(key.lastIndexOf('.') + 1)

/** CPU seconds (user + system) a process has used, from /proc. */
function cpuOf(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(f[11]) + Number(f[12])) / 100
}

/** Seconds a process's threads ran, and waited runnable for a CPU (/proc/<pid>/task/<tid>/schedstat). */
function schedOf(pid: number): { run: number; wait: number } {
  let run = 0
  let wait = 0
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const [r, w] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')
      run += Number(r) / 1e9
      wait += Number(w) / 1e9
    } catch {
      // The thread ended.
    }
  }
  return { run, wait }
}

/** The nats-server started for this probe (its config is in our temporary directory). */
function serverPid(dir: string): number {
  const out = execFileSync('pgrep', ['-f', `nats-server -c ${dir}`], { encoding: 'utf8' })
  return Number(out.trim().split('\n')[0])
}

const VARIANTS = (() => {
  const i = process.argv.indexOf('--variants')
  return (i >= 0 ? JSON.parse(process.argv[i + 1]!) : [{}]) as (Partial<HubOptions> & { link?: string })[]
})()
const ROUNDS = arg('rounds', 1)

async function main(): Promise<void> {
  const natsDir = tempDir('nats')
  const hub = await startDemoHub(natsDir)
  const natsPid = serverPid(natsDir)
  const fleet: { mesh: BuiltinMesh; link: HubLink | undefined }[][] = []
  const startLinks = async ({ link, ...variant }: Partial<HubOptions> & { link?: string }) => {
    for (const t of fleet.flat()) await t.link?.close()
    // `link`: another checkout's hub-link module (a baseline), e.g. "/work/main/src/hub/hub-link.ts".
    const start = link ? ((await import(link)) as { startHubLink: typeof startHubLink }).startHubLink : startHubLink
    fleet.forEach((tills, shop) => {
      for (const t of tills) t.link = start(t.mesh, { servers: hub.url, prefix: `bench.shop-${shop}`, ...variant })
    })
    await until(() => fleet.flat().every((t) => t.link!.status().caughtUp), 60_000, 'the fleet')
  }
  try {
    for (let shop = 0; shop < SHOPS; shop++) {
      const tills = []
      for (let t = 0; t < TILLS; t++) {
        tills.push({ mesh: await openBuiltinStore({ dir: tempDir('till'), siteId: `s${shop}t${t}` }), link: undefined })
      }
      fleet.push(tills)
    }
    await startLinks(VARIANTS[0]!)
    const shop = fleet[0]!
    // As in the suite, the shop has taken an ingest before the fan-out.
    if (INGEST > 0) {
      const held = Promise.all(shop.map((t) => whenHolding(t.mesh, 'ingest', INGEST)))
      for (let i = 0; i < INGEST; i += 100)
        await shop[0]!.mesh.upsert(
          'ingest',
          Array.from({ length: Math.min(100, INGEST - i) }, (_, j) => ({ _id: `i-${i + j}`, n: i + j })),
        )
      await held
    }
    for (let round = 0; round < ROUNDS; round++) {
      // Every other round in reverse order: a load that rises or falls during the run favours no variant.
      const order = [...VARIANTS.entries()]
      if (round % 2 === 1) order.reverse()
      for (const [v, variant] of order) {
        if (round > 0 || v > 0) await startLinks(variant)
        if (SETTLE > 0) await new Promise((r) => setTimeout(r, SETTLE))
        process.stdout.write(`\n== round ${round + 1}, variant ${JSON.stringify(variant)}\n`)
        await fanOut(`r${round}v${v}`)
      }
    }
  } finally {
    clearInterval(tick)
    for (const t of fleet.flat()) {
      await t.link?.close()
      await t.mesh.close()
    }
    await hub.stop()
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  }

  async function fanOut(tag: string): Promise<void> {
    const shop = fleet[0]!.map((t) => ({ mesh: t.mesh, link: t.link! }))
    const docs = new Map<string, Doc>()
    const wallOf = (at: number) => performance.timeOrigin + at
    for (const [i, t] of shop.entries()) {
      traceHubLink(t.link, (step, key, at) => {
        const d = docs.get(idOf(key))
        if (!d) return
        if (i === 0 && step === 'publish') d.publish ??= wallOf(at)
        else if (i === 0 && step === 'ack') d.ack ??= wallOf(at)
        else if (i > 0 && step === 'deliver') d.deliver.set(i, wallOf(at))
        else if (i > 0 && step === 'apply') d.apply.set(i, wallOf(at))
      })
    }
    const collection = `fan${tag}`
    const observers = shop.slice(1).map((t, j) =>
      t.mesh.observe({ collection }, (c) => {
        const at = wall()
        for (const x of [...c.inserted, ...c.updated]) docs.get(x._id as string)?.observe.set(j + 1, at)
      }),
    )
    await Promise.all(observers.map((o) => o.ready))
    const ext = outsider(hub.url, `$KV.meshmirror.bench.shop-0.${collection}.>`)
    await ext.ready

    const load0 = loadavg()[0]!
    const cpu0 = { self: cpuOf(process.pid), nats: cpuOf(natsPid), ext: cpuOf(ext.child.pid!) }
    const sched0 = { self: schedOf(process.pid), nats: schedOf(natsPid) }
    const elu0 = performance.eventLoopUtilization()
    const sent0 = fleet.map((tills) => tills.map((t) => t.link!.status().bytesSent))
    // The receiving tills' work, counted: their commits, and the changes they read from their stores.
    let commits = 0
    let read = 0
    const offCommits = shop.slice(1).map((t) => t.mesh.onCommit(() => commits++))
    const reads = shop.slice(1).map((t) => {
      const changesFor = t.mesh.changesFor
      t.mesh.changesFor = async (...args) => {
        const chunk = await changesFor.apply(t.mesh, args)
        read += chunk.changes.length
        return chunk
      }
      return () => {
        t.mesh.changesFor = changesFor
      }
    })
    const profile = process.env.PROBE_PROFILE ? new Session() : undefined
    if (profile) {
      profile.connect()
      await profile.post('Profiler.enable')
      await profile.post('Profiler.start')
    }
    stalls.length = 0
    gcs.length = 0
    const total = Math.round(SECONDS * RATE)
    const start = performance.now()
    const began = wall()
    for (let i = 0; i < total; i++) {
      const id = `f-${i}`
      const d: Doc = { t0: wall(), deliver: new Map(), apply: new Map(), observe: new Map() }
      docs.set(id, d)
      await shop[0]!.mesh.upsert(collection, [{ _id: id, t: performance.now() }])
      d.commit = wall()
      const wait = start + ((i + 1) * 1000) / RATE - performance.now()
      await new Promise((r) => (wait > 1 ? setTimeout(r, wait) : setImmediate(r)))
    }
    await Promise.all(shop.slice(1).map((t) => whenHolding(t.mesh, collection, total)))
    await new Promise((r) => setTimeout(r, 100))
    const ended = wall()
    if (profile) {
      const { profile: p } = await profile.post('Profiler.stop')
      writeFileSync(`${process.env.PROBE_PROFILE!}.${tag}`, JSON.stringify(p))
    }
    const secs = (ended - began) / 1000
    const sent = fleet.map((tills) =>
      tills.map((t, j) => t.link!.status().bytesSent - sent0[fleet.indexOf(tills)]![j]!),
    )
    const elu = performance.eventLoopUtilization(elu0)
    for (const off of [...offCommits, ...reads]) off()
    const sched = { self: schedOf(process.pid), nats: schedOf(natsPid) }
    const waited = (k: 'self' | 'nats') =>
      `ran ${(sched[k].run - sched0[k].run).toFixed(2)} s, waited for a CPU ${(sched[k].wait - sched0[k].wait).toFixed(2)} s`
    process.stdout.write(`threads over the fan-out: this process ${waited('self')}; nats-server ${waited('nats')}\n`)
    process.stdout.write(
      `receiving tills, per write: ${(commits / total).toFixed(2)} commits, ${(read / total).toFixed(2)} changes read back\n`,
    )
    process.stdout.write(
      `cpu over the fan-out (${secs.toFixed(1)} s): this process ${(((cpuOf(process.pid) - cpu0.self) * 1000) / total).toFixed(3)} ms a write, ${((cpuOf(process.pid) - cpu0.self) / secs).toFixed(2)} cores (event loop busy ${(elu.utilization * 100).toFixed(0)} %), nats-server ${((cpuOf(natsPid) - cpu0.nats) / secs).toFixed(2)}, plain subscriber ${((cpuOf(ext.child.pid!) - cpu0.ext) / secs).toFixed(2)}; bytes sent by the writer ${sent[0]![0]}, by the rest ${sent.flat().reduce((a, b) => a + b, 0) - sent[0]![0]!}\n`,
    )
    for (const o of observers) o.cancel()
    for (const t of shop) traceHubLink(t.link, undefined)
    ext.child.stdin!.write('x')
    const server = await ext.result
    serverSlow = server.slow
    for (const [subject, at] of Object.entries(server.seen)) {
      const d = docs.get(idOf(subject))
      if (d) d.server = at
    }
    report(docs, began, ended, load0)
  }
}

function report(docs: Map<string, Doc>, began: number, ended: number, load0: number): void {
  type Row = { id: string; till: number; total: number; steps: Record<string, number>; at: number }
  const rows: Row[] = []
  for (const [id, d] of docs) {
    for (const [till, obs] of d.observe) {
      const deliver = d.deliver.get(till)
      const apply = d.apply.get(till)
      if (
        d.commit === undefined ||
        d.publish === undefined ||
        d.ack === undefined ||
        deliver === undefined ||
        apply === undefined ||
        d.server === undefined
      ) {
        // A link without the trace hook: the total only.
        rows.push({ id, till, at: d.t0, total: obs - d.t0, steps: {} })
        continue
      }
      rows.push({
        id,
        till,
        at: d.t0,
        total: obs - d.t0,
        steps: {
          commit: d.commit - d.t0,
          toPublish: d.publish - d.commit,
          toServer: d.server - d.publish,
          serverToDeliver: deliver - d.server,
          deliverToApply: apply - deliver,
          applyToObserve: obs - apply,
          publishToAck: d.ack - d.publish,
        },
      })
    }
  }
  const totals = rows.map((r) => r.total)
  const steps = Object.keys(rows.find((r) => Object.keys(r.steps).length > 0)?.steps ?? {})
  const line = (name: string, xs: number[]) =>
    `${name.padEnd(16)} p50 ${percentile(xs, 50).toFixed(2).padStart(7)}  p90 ${percentile(xs, 90).toFixed(2).padStart(7)}  p99 ${percentile(xs, 99).toFixed(2).padStart(7)}  max ${Math.max(
      ...xs,
    )
      .toFixed(2)
      .padStart(7)}`
  const out: string[] = []
  out.push(`samples ${rows.length} (of ${docs.size} writes), load ${load0.toFixed(2)} -> ${loadavg()[0]!.toFixed(2)}`)
  out.push(line('total', totals))
  for (const s of steps)
    out.push(
      line(
        s,
        rows.map((r) => r.steps[s]!),
      ),
    )
  // The slowest 1 %: which step holds most of each one's time.
  const p99 = percentile(totals, 99)
  const slow = rows.filter((r) => r.total >= p99)
  const blame: Record<string, number> = {}
  for (const r of slow) {
    if (steps.length === 0) break
    const [worst] = Object.entries(r.steps)
      .filter(([k]) => k !== 'publishToAck')
      .sort((a, b) => b[1] - a[1])
    blame[worst![0]] = (blame[worst![0]] ?? 0) + 1
  }
  out.push(
    `slowest 1 % (${slow.length} samples >= ${p99.toFixed(1)} ms), the step holding most of each: ${JSON.stringify(blame)}`,
  )
  const avg = (k: string) => slow.reduce((n, r) => n + r.steps[k]!, 0) / Math.max(1, slow.length)
  out.push(`  mean per step over them: ${steps.map((k) => `${k} ${avg(k).toFixed(1)}`).join(', ')}`)
  const inRun = (x: { start: number }) => x.start >= began && x.start <= ended
  const st = stalls.filter(inRun)
  const gc = gcs.filter(inRun)
  out.push(
    `event-loop stalls > 10 ms in the run: ${st.length}, total ${st.reduce((n, s) => n + s.ms, 0).toFixed(0)} ms, longest ${Math.max(0, ...st.map((s) => s.ms)).toFixed(1)} ms`,
  )
  out.push(
    `collections: ${gc.length}, total ${gc.reduce((n, g) => n + g.ms, 0).toFixed(0)} ms, longest ${Math.max(0, ...gc.map((g) => g.ms)).toFixed(1)} ms (kind ${gc.sort((a, b) => b.ms - a.ms)[0]?.kind ?? '-'})`,
  )
  // The slow samples that a stall of this process overlapped (while the document was on its way).
  const overlapped = slow.filter((r) => st.some((s) => s.start < r.at + r.total && s.start + s.ms > r.at)).length
  out.push(`slow samples overlapped by a stall of this process: ${overlapped} of ${slow.length}`)
  const late = serverSlow.filter(([t]) => t >= began && t <= ended)
  const byServer = slow.filter((r) => late.some(([t, ms]) => t < r.at + r.total && t + ms > r.at)).length
  out.push(
    `round trips to the server over 20 ms (from the plain subscriber): ${late.length}, longest ${Math.max(0, ...late.map(([, ms]) => ms)).toFixed(1)} ms; slow samples overlapped by one: ${byServer} of ${slow.length}`,
  )
  // When in the run the slow ones were: the worst total per 250 ms.
  const buckets = new Map<number, number>()
  for (const r of rows) {
    const b = Math.floor((r.at - began) / 250)
    buckets.set(b, Math.max(buckets.get(b) ?? 0, r.total))
  }
  out.push(
    `worst per 250 ms: ${[...buckets]
      .sort((a, b) => a[0] - b[0])
      .map(([, v]) => v.toFixed(0))
      .join(' ')}`,
  )
  const worst = [...rows].sort((a, b) => b.total - a.total).slice(0, 8)
  for (const r of worst)
    out.push(
      `  ${r.id} till ${r.till} at +${(r.at - began).toFixed(0)} ms: ${r.total.toFixed(1)} ms = ${Object.entries(
        r.steps,
      )
        .map(([k, v]) => `${k} ${v.toFixed(1)}`)
        .join(', ')}`,
    )
  for (const s of st.sort((a, b) => b.ms - a.ms).slice(0, 8))
    out.push(`  stall at +${(s.start - began).toFixed(0)} ms: ${s.ms.toFixed(1)} ms`)
  process.stdout.write(`${out.join('\n')}\n`)
}

await main()
