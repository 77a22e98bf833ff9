// Replication between two processes on loopback. The suite runs peer A in
// this process and peer B as a child (this same file, run with `child`).
import { type ChildProcess, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { openBuiltinStore } from '../src/engine/open-builtin-store.js'
import type { BuiltinMesh } from '../src/engine/types.js'
import { openMesh, type ReplicatedMesh, wsTransport } from '../src/index.js'
import { type BenchContext, type BenchResult, type BenchSuite, percentile, summarise, withBaseline } from './harness.js'

const SUITE = 'replication'
const ENCRYPTION_SUITE = 'replication-encryption'
const MESH = { meshId: 'bench', secret: 'bench-replication-secret' }
/** Absolute time in ms, comparable between processes on one machine. */
const now = () => performance.timeOrigin + performance.now()

type Line = Record<string, unknown>

// ---- the child: peer B ----------------------------------------------------

interface ChildConfig {
  dir: string
  peer: string
  /** Plain links instead of the default encrypted ones. */
  insecure?: boolean
}

async function child(config: ChildConfig): Promise<void> {
  const say = (l: Line) => process.stdout.write(`${JSON.stringify(l)}\n`)
  const mesh = await openMesh({
    ...MESH,
    dir: config.dir,
    siteId: 'b',
    peers: [config.peer],
    ...(config.insecure ? { insecure: true } : {}),
  })
  // Latency: when a ping is visible to B's application, and when.
  mesh.observe({ collection: 'ping' }, (c) => {
    const at = now()
    for (const d of [...c.inserted, ...c.updated]) say({ t: 'seen', n: d.n, at })
  })
  // Memory while catching up: sampled, the peak reported once live.
  const idleRss = process.memoryUsage().rss
  let peakRss = idleRss
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss)
  }, 10)
  mesh.replication.on('peer', (p) => {
    if (p.state !== 'live') return
    clearInterval(sampler)
    say({ t: 'live', at: now(), bytesReceived: p.bytesReceived, changes: p.changesReceived, idleRss, peakRss })
  })
  say({ t: 'ready', at: now() })
  createInterface({ input: process.stdin }).on('close', () => {
    void mesh.close().then(() => process.exit(0))
  })
}

// ---- the parent: peer A -----------------------------------------------------

interface Child {
  process: ChildProcess
  waitFor(pred: (l: Line) => boolean): Promise<Line>
  onLine(listener: (l: Line) => void): void
  close(): Promise<void>
}

function startChild(dir: string, peer: string, insecure = false): Child {
  const config: ChildConfig = { dir, peer, ...(insecure ? { insecure } : {}) }
  const proc = spawn(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(import.meta.url), 'child', JSON.stringify(config)],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  )
  const listeners = new Set<(l: Line) => void>()
  createInterface({ input: proc.stdout! }).on('line', (text) => {
    const line = JSON.parse(text) as Line
    for (const l of [...listeners]) l(line)
  })
  const exited = new Promise<void>((r) => proc.once('exit', () => r()))
  return {
    process: proc,
    onLine: (l) => listeners.add(l),
    waitFor: (pred) =>
      new Promise((resolve, reject) => {
        const l = (line: Line) => {
          if (!pred(line)) return
          listeners.delete(l)
          resolve(line)
        }
        listeners.add(l)
        void exited.then(() => reject(new Error('the benchmark peer exited')))
      }),
    async close() {
      proc.stdin?.end()
      await exited
    },
  }
}

async function peerA(ctx: BenchContext, insecure = false): Promise<ReplicatedMesh> {
  return openMesh({
    ...MESH,
    dir: ctx.tempDir('repl-a'),
    siteId: 'a',
    listen: { host: '127.0.0.1', port: 0 },
    ...(insecure ? { insecure: true } : {}),
  })
}

const urlOf = (a: ReplicatedMesh) => `ws://127.0.0.1:${a.replication.port}`

function res(
  name: string,
  workload: string,
  unit: string,
  better: 'higher' | 'lower',
  samples: readonly number[],
  warmup = 'none',
  suite = SUITE,
): BenchResult {
  return summarise({ suite, name, workload, unit, better, warmup }, samples)
}

function doc(j: number) {
  return { _id: `d${j}`, n: j, name: `item ${j}`, price: j * 1.5, shop: 'main', note: 'x'.repeat(40) }
}

async function load(mesh: BuiltinMesh, from: number, n: number) {
  for (let i = from; i < from + n; i += 1000) {
    const docs = []
    for (let j = i; j < Math.min(from + n, i + 1000); j++) docs.push(doc(j))
    await mesh.upsert('items', docs)
  }
}

async function latency(ctx: BenchContext): Promise<BenchResult[]> {
  const n = ctx.quick ? 200 : 2000
  ctx.log(`latency: ${n} single-document writes on A, each until visible in B's store`)
  const a = await peerA(ctx)
  const b = startChild(ctx.tempDir('repl-b'), urlOf(a))
  await b.waitFor((l) => l.t === 'live')
  const remote: number[] = []
  const local: number[] = []
  let localT0 = 0
  let localSeen: () => void = () => {}
  const observer = a.observe({ collection: 'ping' }, () => {
    local.push(now() - localT0)
    localSeen()
  })
  await observer.ready
  for (let i = 0; i < n + 50; i++) {
    const seen = b.waitFor((l) => l.t === 'seen' && l.n === i)
    const localDone = new Promise<void>((r) => {
      localSeen = r
    })
    localT0 = now()
    await a.upsert('ping', [{ _id: 'p', n: i }])
    const committed = now()
    const line = await seen
    await localDone
    // The first 50 warm up both processes.
    if (i >= 50) remote.push((line.at as number) - committed)
    else local.pop()
  }
  observer.cancel()
  await b.close()
  await a.close()
  const workload = `${n} sequential single-document upserts on A; time from A's commit to B's observer, two processes on loopback`
  const base = res(
    "write → observer in A's own process (baseline)",
    `the same ${n} upserts, observed locally on A`,
    'ms',
    'lower',
    local,
    '50 writes',
  )
  const p50 = withBaseline(res('end-to-end latency A → B, p50', workload, 'ms', 'lower', remote, '50 writes'), base)
  p50.target = { description: 'p50 < 5 ms', pass: p50.median < 5 }
  const p99v = percentile(remote, 99)
  const p99: BenchResult = {
    ...p50,
    name: 'end-to-end latency A → B, p99',
    median: p99v,
    ratio: p99v / percentile(local, 99),
    baseline: { name: `${base.name}, p99`, median: percentile(local, 99) },
    target: { description: 'p99 < 25 ms', pass: p99v < 25 },
  }
  return [base, p50, p99]
}

async function catchUpAndReconnect(ctx: BenchContext): Promise<BenchResult[]> {
  const n = ctx.quick ? 2_000 : 100_000
  const changed = ctx.quick ? 100 : 1_000
  ctx.log(`catch-up: ${n} documents to an empty peer, then a reconnect after ${changed} changes`)
  // Baseline: writing the same documents into a local store.
  const plain = await openBuiltinStore({ dir: ctx.tempDir('repl-local') })
  const l0 = performance.now()
  await load(plain, 0, n)
  const localMs = performance.now() - l0
  await plain.close()

  // Memory baseline: the same catch-up of a fifth of the documents.
  const small = await peerA(ctx)
  await load(small, 0, n / 5)
  const smallB = startChild(ctx.tempDir('repl-b'), urlOf(small))
  const smallLive = await smallB.waitFor((l) => l.t === 'live')
  const smallGrowth = (smallLive.peakRss as number) - (smallLive.idleRss as number)
  await smallB.close()
  await small.close()

  const a = await peerA(ctx)
  await load(a, 0, n)
  const dirB = ctx.tempDir('repl-b')
  let b = startChild(dirB, urlOf(a))
  const ready = await b.waitFor((l) => l.t === 'ready')
  const live = await b.waitFor((l) => l.t === 'live')
  const catchUpMs = (live.at as number) - (ready.at as number)
  const fullBytes = live.bytesReceived as number
  const fullChanges = live.changes as number
  const idleRss = live.idleRss as number
  const peakRss = live.peakRss as number
  await b.close()

  // B is away while A changes `changed` documents; then B comes back.
  for (let i = 0; i < changed; i += 100) {
    const docs = []
    for (let j = i; j < Math.min(changed, i + 100); j++) docs.push({ ...doc(j * 7), price: -j })
    await a.upsert('items', docs)
  }
  b = startChild(dirB, urlOf(a))
  const ready2 = await b.waitFor((l) => l.t === 'ready')
  const back = await b.waitFor((l) => l.t === 'live')
  const reconnectMs = (back.at as number) - (ready2.at as number)
  const reconnectBytes = back.bytesReceived as number
  await b.close()
  await a.close()

  const localBase: BenchResult = {
    ...res(
      'local write of the same documents (baseline)',
      `${n} 6-field documents upserted in batches of 1,000 into one local store`,
      'ms',
      'lower',
      [localMs],
    ),
  }
  const catchUp = withBaseline(
    res(
      'catch-up of an empty peer',
      `${n} documents from A to an empty B in another process, from B's start to B live (${fullChanges} changes, ${(fullBytes / 2 ** 20).toFixed(1)} MiB on the wire, ${(fullBytes / n).toFixed(0)} bytes/doc)`,
      'ms',
      'lower',
      [catchUpMs],
    ),
    localBase,
  )
  catchUp.target = {
    description: `${n === 100_000 ? '' : '(quick size) '}< 5 s for 100,000 documents`,
    pass: catchUpMs < 5000,
  }
  const bytesFull: BenchResult = res(
    'catch-up bytes on the wire',
    `frames received by B during the catch-up of ${n} documents`,
    'bytes',
    'lower',
    [fullBytes],
  )
  const perChangeFull = fullBytes / n
  const perChangeReconnect = reconnectBytes / changed
  const reconnect: BenchResult = {
    ...res(
      'reconnect bytes per changed document',
      `B reconnects after A changed ${changed} of ${n} documents: ${reconnectBytes} bytes in ${reconnectMs.toFixed(0)} ms; ratio against catch-up bytes per document`,
      'bytes/change',
      'lower',
      [perChangeReconnect],
    ),
    baseline: { name: 'catch-up bytes per document', median: perChangeFull },
    ratio: perChangeReconnect / perChangeFull,
    target: {
      description: `bytes proportional to the changes: reconnect < 10% of the catch-up's bytes (${((100 * changed) / n).toFixed(1)}% of documents changed)`,
      pass: reconnectBytes < 0.1 * fullBytes,
    },
  }
  const reconnectShare: BenchResult = {
    ...res(
      'reconnect bytes / catch-up bytes',
      `${changed} changed of ${n}: share of the full catch-up's bytes sent again (${(changed / n).toFixed(3)} would be exactly proportional)`,
      'ratio',
      'lower',
      [reconnectBytes / fullBytes],
    ),
  }
  const MiB = 2 ** 20
  const memBase: BenchResult = res(
    'memory growth of B catching up a fifth of the documents (baseline)',
    `peak RSS minus RSS before, ${n / 5} documents, sampled every 10 ms`,
    'MiB',
    'lower',
    [smallGrowth / MiB],
  )
  const mem = withBaseline(
    res(
      'memory growth of B during the catch-up',
      `peak RSS minus RSS before (${(idleRss / MiB).toFixed(0)} → ${(peakRss / MiB).toFixed(0)} MiB) while receiving ${n} documents, ${(fullBytes / MiB).toFixed(1)} MiB of frames`,
      'MiB',
      'lower',
      [(peakRss - idleRss) / MiB],
    ),
    memBase,
  )
  // Flat: five times the documents must not take anywhere near five times the memory.
  mem.target = { description: 'flat: < 2x the growth for a fifth of the documents', pass: (mem.ratio ?? 0) < 2 }
  return [localBase, catchUp, bytesFull, reconnect, reconnectShare, memBase, mem]
}

async function sustained(ctx: BenchContext): Promise<BenchResult[]> {
  const rate = ctx.quick ? 2_000 : 10_000
  const seconds = ctx.quick ? 1 : 5
  ctx.log(`sustained: ${rate} writes/s on A for ${seconds} s, sampling B's lag`)
  const a = await peerA(ctx)
  const b = startChild(ctx.tempDir('repl-b'), urlOf(a))
  await b.waitFor((l) => l.t === 'live')
  const lags: number[] = []
  const sample = () => {
    const link = a.replication.peers().find((p) => p.site === 'b')
    if (link) lags.push(link.lag)
  }
  const sampler = setInterval(sample, 20)
  const t0 = performance.now()
  let written = 0
  const total = rate * seconds
  // Paced by the clock: each round writes what the rate allows so far, in one small transaction.
  while (written < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate))
    if (due > written) {
      const docs = []
      for (let j = written; j < Math.min(due, written + 500); j++) docs.push({ _id: `s${j % 5000}`, n: j })
      await a.upsert('live', docs)
      written += docs.length
    } else {
      await new Promise((r) => setImmediate(r))
    }
  }
  const writeMs = performance.now() - t0
  // Drained: B acknowledged everything.
  const d0 = performance.now()
  await new Promise<void>((resolve) => {
    const check = () => {
      const link = a.replication.peers().find((p) => p.site === 'b')
      if (link && link.lag === 0) resolve()
      else setImmediate(check)
    }
    check()
  })
  const drainMs = performance.now() - d0
  clearInterval(sampler)
  await b.close()
  await a.close()
  const achieved = written / (writeMs / 1000)
  const base: BenchResult = res(
    'offered write rate on A (baseline)',
    `${total} single-field upserts over ${seconds} s, in small transactions`,
    'writes/s',
    'higher',
    [rate],
  )
  const got = withBaseline(
    res(
      'sustained write rate on A while B replicates',
      `${total} writes, B live in another process`,
      'writes/s',
      'higher',
      [achieved],
    ),
    base,
  )
  got.target = { description: `>= ${rate} writes/s`, pass: achieved >= rate * 0.98 }
  const lag: BenchResult = {
    ...res(
      "B's lag during sustained writes",
      `A's changes not yet acknowledged by B, sampled every 20 ms (median; max ${Math.max(...lags)}, p99 ${percentile(lags, 99)}); drained ${drainMs.toFixed(1)} ms after the last write`,
      'changes',
      'lower',
      lags,
    ),
    target: {
      description: 'B keeps up: p99 lag under 0.1 s of writes',
      pass: percentile(lags, 99) < rate / 10,
    },
  }
  return [base, got, lag]
}

/**
 * What encryption costs: catch-up throughput over the default link (TLS,
 * ECDHE-PSK-CHACHA20-POLY1305) against plain links (`insecure: true`), in
 * the same run, runs interleaved so both see the same machine load.
 */
async function encryption(ctx: BenchContext): Promise<BenchResult[]> {
  const n = ctx.quick ? 2_000 : 50_000
  const runs = ctx.quick ? 2 : 5
  ctx.log(`encryption: catch-up of ${n} documents, encrypted and plain links, ${runs} runs each`)
  const encrypted = await peerA(ctx)
  const plain = await peerA(ctx, true)
  await load(encrypted, 0, n)
  await load(plain, 0, n)
  const rates = { encrypted: [] as number[], plain: [] as number[] }
  let bytes = 0
  for (let run = 0; run < runs + 1; run++) {
    for (const insecure of run % 2 ? [true, false] : [false, true]) {
      const b = startChild(ctx.tempDir('repl-b'), urlOf(insecure ? plain : encrypted), insecure)
      const ready = await b.waitFor((l) => l.t === 'ready')
      const live = await b.waitFor((l) => l.t === 'live')
      await b.close()
      bytes = live.bytesReceived as number
      // The first round warms both up.
      if (run > 0)
        (insecure ? rates.plain : rates.encrypted).push(n / (((live.at as number) - (ready.at as number)) / 1000))
    }
  }
  await encrypted.close()
  await plain.close()
  const workload = (how: string) =>
    `catch-up of ${n} documents (${(bytes / 2 ** 20).toFixed(1)} MiB of frames) from A to an empty B in another process over ${how}, from B's start (handshake included) to B live`
  const base = res(
    'catch-up throughput, plain links (insecure: true) (baseline)',
    workload('plain WebSocket'),
    'docs/s',
    'higher',
    rates.plain,
    'one catch-up of each',
    ENCRYPTION_SUITE,
  )
  const tls = withBaseline(
    res(
      'catch-up throughput, encrypted links (default)',
      workload('the default link: TLS 1.2, ECDHE-PSK-CHACHA20-POLY1305'),
      'docs/s',
      'higher',
      rates.encrypted,
      'one catch-up of each',
      ENCRYPTION_SUITE,
    ),
    base,
  )
  tls.target = {
    description: 'encryption costs under a third of the throughput: ratio > 0.67',
    pass: (tls.ratio ?? 0) > 0.67,
  }
  return [base, tls]
}

/**
 * The cost of encryption on the carrier alone: frames pushed through one
 * link as fast as it takes them, plain against TLS, both ends in this
 * process (so one thread encrypts and decrypts), runs interleaved.
 */
async function linkThroughput(ctx: BenchContext): Promise<BenchResult[]> {
  const MiB = 2 ** 20
  const total = (ctx.quick ? 16 : 256) * MiB
  const runs = ctx.quick ? 2 : 5
  const frame = 'x'.repeat(64 * 1024)
  ctx.log(`link throughput: ${total / MiB} MiB of 64 KiB frames, encrypted and plain, ${runs} runs each`)
  const once = async (insecure: boolean): Promise<number> => {
    const transport = wsTransport(insecure ? {} : { psk: { meshId: MESH.meshId, secrets: [MESH.secret] } })
    let received = 0
    let done!: () => void
    const all = new Promise<void>((resolve) => {
      done = resolve
    })
    const listener = await transport.listen({ host: '127.0.0.1', port: 0 }, (c) =>
      c.onMessage((f) => {
        received += f.length
        if (received >= total) done()
      }),
    )
    const link = await transport.dial(`ws://127.0.0.1:${listener.port}`)
    const t0 = performance.now()
    for (let sent = 0; sent < total; sent += frame.length) {
      link.send(frame)
      while (link.buffered > 4 * MiB) await new Promise((r) => setImmediate(r))
    }
    await all
    const mibPerS = total / MiB / ((performance.now() - t0) / 1000)
    link.close('done')
    await listener.close()
    return mibPerS
  }
  const rates = { encrypted: [] as number[], plain: [] as number[] }
  for (let run = 0; run < runs + 1; run++) {
    for (const insecure of run % 2 ? [true, false] : [false, true]) {
      const rate = await once(insecure)
      if (run > 0) (insecure ? rates.plain : rates.encrypted).push(rate)
    }
  }
  const workload = (how: string) =>
    `${total / MiB} MiB of 64 KiB text frames through one WebSocket link over ${how}, both ends in one process on 127.0.0.1, sender paced by the link's buffer`
  const base = res(
    'link throughput, plain (insecure: true) (baseline)',
    workload('plain TCP'),
    'MiB/s',
    'higher',
    rates.plain,
    'one transfer of each',
    ENCRYPTION_SUITE,
  )
  const tls = withBaseline(
    res(
      'link throughput, encrypted (default)',
      workload('TLS 1.2, ECDHE-PSK-CHACHA20-POLY1305'),
      'MiB/s',
      'higher',
      rates.encrypted,
      'one transfer of each',
      ENCRYPTION_SUITE,
    ),
    base,
  )
  return [base, tls]
}

/** The replication suite: latency, catch-up, reconnect, sustained rate. */
export const replicationSuite: BenchSuite = {
  name: SUITE,
  async run(ctx) {
    return [...(await latency(ctx)), ...(await catchUpAndReconnect(ctx)), ...(await sustained(ctx))]
  },
}

/** What encrypting the links costs: encrypted against plain, in catch-up throughput and on the carrier alone. */
export const replicationEncryptionSuite: BenchSuite = {
  name: ENCRYPTION_SUITE,
  async run(ctx) {
    return [...(await encryption(ctx)), ...(await linkThroughput(ctx))]
  },
}

if (process.argv[2] === 'child' && process.argv[1] === fileURLToPath(import.meta.url)) {
  await child(JSON.parse(process.argv[3]!) as ChildConfig)
}
