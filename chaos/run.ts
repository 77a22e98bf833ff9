/**
 * The chaos suite: real `meshmirror peer` processes over real SQLite
 * databases that apps write continuously, beaten on by a seeded fault
 * schedule (SIGKILL at any moment, frozen tills, partitions one way and both
 * ways, slow and dropped links through TCP proxies, clocks minutes off that
 * jump back, a full disk, restarts with a changed config). Then every fault is
 * healed, and once the tills are quiet every invariant is checked on every
 * till. Exits 1 when one is violated.
 *
 *   npm run chaos -- [--short] [--tills 3] [--duration 240] [--seed N] [--rate 40] [--kill-every 4]
 *                    [--partition-every 20] [--freeze-every 45] [--max-freeze 30] [--converge-timeout 120]
 *                    [--clock-every 30] [--disk-every 60] [--disk-mb 2048] [--steady]
 *                    [--no-clock-skew] [--no-disk-full] [--no-config-changes]
 *                    [--json] [--keep] [--from-source]
 *
 * --short is the CI form: 40 s of faults on seed 17. Times are in seconds; "every" is a mean.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import Database from 'better-sqlite3'
import { agreed, snapshot, type TillSnapshot, violations } from './check.js'
import { FaultInjector } from './faults.js'
import { Network } from './network.js'
import { prepareRuntime } from './runtime.js'
import { initialClockOffsets, makeSchedule } from './schedule.js'
import { type AppReport, type ConfigShape, peerConfig, SHOP_DDL, SHOP_TABLES } from './shop.js'
import { type FakeClock, killAll, type MemorySample, Till } from './till.js'

interface Options {
  tills: number
  durationS: number
  seed: number
  /** Writes per second per app. */
  rate: number
  killEveryS: number
  partitionEveryS: number
  freezeEveryS: number
  convergeTimeoutS: number
  maxFreezeS: number
  clockEveryS: number
  diskEveryS: number
  diskMb: number
  clockSkew: boolean
  diskFull: boolean
  configChanges: boolean
  /** The last till's peer is never killed or restarted (its memory over the whole run). */
  steady: boolean
  json: boolean
  keep: boolean
  fromSource: boolean
}

function parseArgs(argv: string[]): Options {
  const short = argv.includes('--short')
  const o: Options = {
    tills: 3,
    durationS: short ? 40 : 240,
    seed: short ? 17 : Math.floor(Math.random() * 2 ** 31),
    rate: 40,
    killEveryS: short ? 2.5 : 4,
    partitionEveryS: short ? 12 : 20,
    freezeEveryS: short ? 20 : 45,
    convergeTimeoutS: 120,
    maxFreezeS: short ? 8 : 30,
    clockEveryS: short ? 12 : 30,
    diskEveryS: short ? 15 : 60,
    diskMb: short ? 256 : 2048,
    clockSkew: true,
    diskFull: true,
    configChanges: true,
    steady: false,
    json: false,
    keep: false,
    fromSource: false,
  }
  const numbers: Record<string, keyof Options> = {
    '--tills': 'tills',
    '--duration': 'durationS',
    '--seed': 'seed',
    '--rate': 'rate',
    '--kill-every': 'killEveryS',
    '--partition-every': 'partitionEveryS',
    '--freeze-every': 'freezeEveryS',
    '--converge-timeout': 'convergeTimeoutS',
    '--max-freeze': 'maxFreezeS',
    '--clock-every': 'clockEveryS',
    '--disk-every': 'diskEveryS',
    '--disk-mb': 'diskMb',
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--short') continue
    if (arg === '--json') o.json = true
    else if (arg === '--keep') o.keep = true
    else if (arg === '--from-source') o.fromSource = true
    else if (arg === '--steady') o.steady = true
    else if (arg === '--no-clock-skew') o.clockSkew = false
    else if (arg === '--no-disk-full') o.diskFull = false
    else if (arg === '--no-config-changes') o.configChanges = false
    else if (numbers[arg]) {
      const v = Number(argv[++i])
      if (!Number.isFinite(v) || v <= 0) throw new Error(`${arg} needs a positive number`)
      ;(o as unknown as Record<string, number>)[numbers[arg]] = v
    } else throw new Error(`unknown argument ${arg}`)
  }
  if (!Number.isInteger(o.tills) || o.tills < 2 || o.tills > 9) throw new Error('--tills must be 2 to 9')
  return o
}

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2))
  const t0 = performance.now()
  const elapsed = () => ((performance.now() - t0) / 1000).toFixed(1).padStart(6)
  // With --json, stdout carries only the summary.
  const say = (line: string) => (o.json ? process.stderr : process.stdout).write(`[${elapsed()}s] ${line}\n`)
  const runtime = prepareRuntime(o.fromSource, say)
  const root = mkdtempSync(join(tmpdir(), 'meshmirror-chaos-'))
  const skips: string[] = []
  const fakeTime = o.clockSkew ? probeFakeTime(root) : 'turned off (--no-clock-skew)'
  if (typeof fakeTime === 'string') skips.push(`clock skew skipped: ${fakeTime}`)
  // The till whose mesh directory fills up: the second one (the first holds the catalogue).
  const diskTill = 1
  const disk = join(root, `till-${diskTill + 1}`, 'disk')
  const diskProblem = o.diskFull ? mountTmpfs(disk, o.diskMb) : 'turned off (--no-disk-full)'
  if (diskProblem) skips.push(`disk full skipped: ${diskProblem}`)
  if (!o.configChanges) skips.push('config changes skipped: turned off (--no-config-changes)')
  for (const line of skips) say(line)
  const steadyTill = o.steady ? o.tills - 1 : undefined
  const schedule = makeSchedule({
    seed: o.seed,
    tills: o.tills,
    durationMs: o.durationS * 1000,
    killEveryMs: o.killEveryS * 1000,
    partitionEveryMs: o.partitionEveryS * 1000,
    freezeEveryMs: o.freezeEveryS * 1000,
    linkEveryMs: 6000,
    maxFreezeMs: o.maxFreezeS * 1000,
    clockOffsetsMs: typeof fakeTime === 'string' ? [] : initialClockOffsets(o.tills),
    clockEveryMs: typeof fakeTime === 'string' ? 0 : o.clockEveryS * 1000,
    diskTill: diskProblem ? undefined : diskTill,
    diskEveryMs: o.diskEveryS * 1000,
    configChanges: o.configChanges,
    steadyTill,
  })
  say(
    `chaos: ${o.tills} tills, ${o.durationS} s of faults, seed ${o.seed}, ${o.rate} writes/s per till, ${schedule.length} faults scheduled`,
  )
  say(
    `reproduce: npm run chaos -- --tills ${o.tills} --duration ${o.durationS} --seed ${o.seed} --rate ${o.rate} --kill-every ${o.killEveryS} --partition-every ${o.partitionEveryS} --freeze-every ${o.freezeEveryS} --max-freeze ${o.maxFreezeS} --clock-every ${o.clockEveryS} --disk-every ${o.diskEveryS} --disk-mb ${o.diskMb}${o.steady ? ' --steady' : ''}${o.clockSkew ? '' : ' --no-clock-skew'}${o.diskFull ? '' : ' --no-disk-full'}${o.configChanges ? '' : ' --no-config-changes'}`,
  )
  say(`files: ${root}`)
  writeFileSync(join(root, 'schedule.json'), JSON.stringify(schedule, null, 1))

  const ports = await Promise.all(Array.from({ length: o.tills }, freePort))
  const network = await Network.open(ports, ['--import', 'tsx'])
  const tills = ports.map((port, i) => {
    const dir = join(root, `till-${i + 1}`)
    mkdirSync(dir, { recursive: true })
    const db = new Database(join(dir, 'till.db'))
    db.pragma('journal_mode = WAL')
    db.exec(SHOP_DDL)
    db.close()
    const configFile = join(dir, 'meshmirror.config.json')
    const peers = ports.flatMap((_, j) => (j === i ? [] : [network.url(i, j)]))
    const onDisk = i === diskTill && !diskProblem
    const meshDir = onDisk ? join(disk, 'mesh') : join(dir, 'mesh')
    const clock: FakeClock | undefined =
      typeof fakeTime === 'string' ? undefined : { library: fakeTime.library, file: join(dir, 'clock') }
    // Without config changes (and on the steady till, never restarted) every table is mirrored from the start.
    const shape: ConfigShape = { shifts: !o.configChanges || i === steadyTill, excludeNote: false }
    const till = new Till(
      i,
      dir,
      configFile,
      runtime,
      (sh) => peerConfig(dir, meshDir, port, peers, sh),
      shape,
      clock,
      onDisk ? disk : undefined,
    )
    if (clock) till.setClock(initialClockOffsets(o.tills)[i]!)
    return till
  })
  for (const t of tills) if (t.clockOffsetMs !== 0) say(`${t.name}: clock ${t.clockOffsetMs / 1000} s off`)
  const injector = new FaultInjector(tills, network, say)
  let opened = performance.now()
  const memory = setInterval(() => {
    for (const t of tills) t.sampleMemory(performance.now() - opened)
  }, 1000)
  let reports: AppReport[] = []
  let problems: string[] = []
  let convergedAfterMs: number | null = null
  let finalSnapshots: TillSnapshot[] = []
  let progress: NodeJS.Timeout | undefined
  let endOfFaultsMs = o.durationS * 1000
  const lastNotes: string[] = []
  try {
    tills.forEach((t, i) => {
      t.startApp(o.seed * 31 + i, o.rate, i === 0)
      t.startPeer()
    })
    await waitUntil(() => tills.every((t) => t.state === 'live' && t.selling), 120_000, 'every till live and selling')
    say('every till is live and selling; faults begin')
    const start = performance.now()
    opened = start
    for (const t of tills) t.memory.length = 0
    progress = setInterval(() => say(progressLine(tills, injector.counts)), 5000)
    for (const f of schedule) {
      const wait = start + f.at - performance.now()
      if (wait > 0) await sleep(wait)
      await injector.apply(f)
    }
    const left = start + o.durationS * 1000 - performance.now()
    if (left > 0) await sleep(left)
    clearInterval(progress)
    say('faults end: every fault is healed, the apps stop selling')
    // Healed first: an app woken to stop while its peer stayed frozen holding the write lock
    // would wait for it, and fail with SQLITE_BUSY, which no real till does.
    await injector.heal()
    reports = (await Promise.all(tills.map((t) => t.stopApp()))).filter((r): r is AppReport => r !== undefined)
    writeFileSync(join(root, 'apps.json'), JSON.stringify(reports))
    if (reports.length < tills.length)
      problems.push(`${tills.length - reports.length} apps did not report what they wrote`)
    // Every till ends mirroring every table and column, so that every invariant covers them all.
    for (const t of tills) {
      if (t.shape.shifts && !t.shape.excludeNote) continue
      say(`${t.name}: restarted with the full config (shifts mirrored, notes mirrored)`)
      t.reshape({ shifts: true, excludeNote: false })
      await t.terminate(30_000)
      t.startPeer()
    }
    const healedAt = performance.now()
    endOfFaultsMs = healedAt - start
    // On a loaded machine a start that catches up a long backlog takes minutes: as long as converging may.
    await waitUntil(() => tills.every((t) => t.state === 'live'), o.convergeTimeoutS * 1000, 'every peer live again')
    convergedAfterMs = await converge(tills, o.convergeTimeoutS * 1000, healedAt)
    if (convergedAfterMs === null) problems.push(`the tills did not agree within ${o.convergeTimeoutS} s of the heal`)
    else say(`converged ${(convergedAfterMs / 1000).toFixed(1)} s after the heal`)
    if (convergedAfterMs !== null) problems.push(...(await lastWord(tills, lastNotes, say)))
    for (const t of tills) {
      t.supervised = false
      const how = await t.terminate(30_000)
      if (how === 'killed') problems.push(`${t.name}: did not stop within 30 s of SIGTERM`)
      else if (how !== 0) problems.push(`${t.name}: stopped with exit code ${how}`)
    }
    finalSnapshots = tills.map((t) => snapshot(t.name, t.dbFile))
    problems = [...problems, ...violations(finalSnapshots, reports, { [LAST_WORD_CUSTOMER]: lastNotes })]
    if (
      (injector.counts['disk full'] ?? 0) > 0 &&
      tills.every((t) => t.stats.diskFullErrors + t.stats.refusedOnFullDisk === 0)
    ) {
      problems.push('the disk filled up and no peer reported it')
    }
    if (steadyTill !== undefined) {
      const flat = flatness(tills[steadyTill]!.memory, endOfFaultsMs)
      if (flat && !flat.flat) problems.push(`${tills[steadyTill]!.name}: peer memory grew: ${flat.summary}`)
    }
    for (const t of tills) {
      if (t.stats.drifted > 0) {
        problems.push(
          `${t.name}: verification found ${t.stats.drifted} documents out of step with the mesh (${t.samples.drifted.join(', ')}); they were applied again`,
        )
      }
      if (t.stats.unexpectedExits.length > 0) {
        problems.push(
          `${t.name}: the peer exited on its own ${t.stats.unexpectedExits.length} times (${t.stats.unexpectedExits.join(', ')})`,
        )
      }
    }
  } catch (error) {
    problems.push(`the run failed: ${error instanceof Error ? error.message : String(error)}`)
  } finally {
    clearInterval(progress)
    clearInterval(memory)
    await injector.heal(false)
    for (const t of tills) {
      t.supervised = false
      await t.kill()
      await t.stopApp()
      t.close()
    }
    await network.close()
    if (!diskProblem) unmountTmpfs(disk, o.keep || problems.length > 0)
  }
  const summary = {
    ok: problems.length === 0,
    seed: o.seed,
    tills: o.tills,
    durationS: o.durationS,
    writesPerSecondPerTill: o.rate,
    faults: injector.counts,
    skipped: skips,
    writes: sumCounts(reports),
    slowWrites: slowWrites(reports, tills),
    busy: busyCauses(reports, tills),
    rows: finalSnapshots[0]?.rows ?? {},
    convergedAfterMs: convergedAfterMs === null ? null : Math.round(convergedAfterMs),
    peers: tills.map((t) => ({
      till: t.name,
      starts: t.stats.starts,
      slowestStartMs: Math.round(t.stats.slowestStartMs),
      clockOffsetS: t.clockOffsetMs / 1000,
      memoryMb: memoryFigures(t.memory),
      ...(t.index === steadyTill ? { steady: flatness(t.memory, endOfFaultsMs) } : {}),
      diskFullErrors: t.stats.diskFullErrors,
      refusedOnFullDisk: t.stats.refusedOnFullDisk,
      syncErrors: t.stats.syncErrors,
      rejected: t.stats.rejected,
      drifted: t.stats.drifted,
      errorSamples: t.samples.errors,
    })),
    violations: problems,
    files: o.keep ? root : undefined,
  }
  printSummary(summary, say)
  if (o.json) process.stdout.write(`${JSON.stringify(summary)}\n`)
  if (!o.keep && problems.length === 0) rmSync(root, { recursive: true, force: true })
  else say(`files kept: ${root}`)
  return problems.length === 0 ? 0 : 1

  function progressLine(ts: readonly Till[], counts: Record<string, number>): string {
    const faults = Object.entries(counts)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')
    const state = ts.map((t) => `${t.name} ${t.frozen ? 'frozen' : t.state} ${ordersOf(t)}`).join(' | ')
    return `${state} || ${faults || 'no faults yet'}`
  }
}

const LAST_WORD_CUSTOMER = 'c00'

/**
 * Last writer wins, whatever the clocks: each till in turn (the one whose
 * clock runs furthest ahead first, the furthest behind last) writes a note
 * on one customer once every till holds the previous till's, and every till
 * must come to hold it. A till whose clock is behind must be able to
 * overwrite what it has seen. Returns the problems; `written` gets the notes.
 */
async function lastWord(tills: readonly Till[], written: string[], say: (line: string) => void): Promise<string[]> {
  const order = [...tills].sort((a, b) => b.clockOffsetMs - a.clockOffsetMs)
  const noteOf = (t: Till) => {
    const db = new Database(t.dbFile, { readonly: true })
    try {
      return db.prepare('SELECT note FROM customers WHERE id = ?').pluck().get(LAST_WORD_CUSTOMER)
    } finally {
      db.close()
    }
  }
  for (const t of order) {
    const note = `last word from ${t.name} (clock ${t.clockOffsetMs / 1000} s off)`
    written.push(note)
    const db = new Database(t.dbFile)
    try {
      db.pragma('busy_timeout = 5000')
      db.prepare('UPDATE customers SET note = ? WHERE id = ?').run(note, LAST_WORD_CUSTOMER)
    } finally {
      db.close()
    }
    const deadline = performance.now() + 60_000
    let held: unknown[] = []
    while (performance.now() < deadline) {
      held = tills.map(noteOf)
      if (held.every((n) => n === note)) break
      await sleep(200)
    }
    if (!held.every((n) => n === note)) {
      return [
        `last writer wins: ${t.name} wrote "${note}" after every till held the previous note, and 60 s later the tills hold ${held.map((n, i) => `${tills[i]!.name} "${String(n)}"`).join(', ')}`,
      ]
    }
  }
  say(`last writer wins: ${order.map((t) => t.name).join(', ')} each wrote a note in turn; every till holds each one`)
  return []
}

/** Row counts of the shop's tables and of what is left to send or apply, as one string. */
function counts(file: string): string {
  const db = new Database(file, { readonly: true })
  try {
    return [...SHOP_TABLES, '_meshmirror_outbox', '_meshmirror_parked']
      .map((t) => db.prepare(`SELECT count(*) FROM ${t}`).pluck().get())
      .join(' ')
  } catch {
    return 'unreadable'
  } finally {
    db.close()
  }
}

function ordersOf(t: Till): string {
  try {
    const db = new Database(t.dbFile, { readonly: true })
    try {
      return `${db.prepare('SELECT count(*) FROM orders').pluck().get()} orders`
    } finally {
      db.close()
    }
  } catch {
    return ''
  }
}

async function waitUntil(fn: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!fn()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`)
    await sleep(50)
  }
}

/** Waits until every till holds the same data twice in a row, with nothing left to send or apply. */
async function converge(tills: readonly Till[], timeoutMs: number, from: number): Promise<number | null> {
  const deadline = performance.now() + timeoutMs
  let previous: string | undefined
  let since = 0
  while (performance.now() < deadline) {
    const now = performance.now()
    // Row counts first: reading every row of every till is only worth it once they match.
    const counted = tills.map((t) => counts(t.dbFile))
    if (counted.some((c) => c !== counted[0])) {
      previous = undefined
      await sleep(500)
      continue
    }
    const snaps = tills.map((t) => snapshot(t.name, t.dbFile))
    if (agreed(snaps)) {
      if (previous === snaps[0]!.fingerprint) return since - from
      previous = snaps[0]!.fingerprint
      since = now
    } else previous = undefined
    await sleep(500)
  }
  return null
}

/**
 * Whether libfaketime can move a Node process's clock: the library, or why
 * the clock faults are skipped.
 */
function probeFakeTime(root: string): FakeClock | string {
  const library = [
    '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1',
    '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1',
    '/usr/lib/faketime/libfaketime.so.1',
  ].find(existsSync)
  if (!library) return 'libfaketime is not installed (apt-get install faketime)'
  const file = join(root, 'clock-probe')
  writeFileSync(file, '+3600\n')
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(Date.now()))'], {
    env: { ...process.env, LD_PRELOAD: library, FAKETIME_TIMESTAMP_FILE: file, FAKETIME_DONT_FAKE_MONOTONIC: '1' },
    encoding: 'utf8',
  })
  rmSync(file, { force: true })
  const skew = Number(r.stdout) - Date.now()
  if (!(skew > 3_500_000 && skew < 3_700_000))
    return `libfaketime does not move Node's clock here (${r.stderr || r.stdout})`
  return { library, file: '' }
}

/** Mounts a tmpfs of `mb` MB on `dir`: undefined, or why it could not. */
function mountTmpfs(dir: string, mb: number): string | undefined {
  mkdirSync(dir, { recursive: true })
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${mb}m`, 'tmpfs', dir], { stdio: ['ignore', 'ignore', 'pipe'] })
    return undefined
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim()
    return `cannot mount a tmpfs (${stderr || String(error)})`
  }
}

/** Unmounts the tmpfs, first copying its mesh directory beside it when the run's files are kept. */
function unmountTmpfs(dir: string, keep: boolean): void {
  try {
    rmSync(join(dir, 'filler'), { force: true })
    rmSync(join(dir, 'filler-top'), { force: true })
    if (keep) execFileSync('cp', ['-a', join(dir, 'mesh'), join(dir, '..', 'mesh-from-tmpfs')])
    execFileSync('umount', [dir])
  } catch {
    // Lazily, if something still has a file open there.
    spawnSync('umount', ['-l', dir])
  }
}

/** A peer's resident memory over the run, in MB: the first and last sample, and the largest. */
function memoryFigures(samples: readonly MemorySample[]): { start: number; end: number; max: number } | null {
  if (samples.length === 0) return null
  const mb = (kb: number) => Math.round(kb / 1024)
  return {
    start: mb(samples[0]!.rssKb),
    end: mb(samples.at(-1)!.rssKb),
    max: mb(Math.max(...samples.map((s) => s.rssKb))),
  }
}

/**
 * Whether a peer that ran the whole time kept its memory flat: the median
 * resident memory of the last tenth of the run against that of the tenth
 * before its middle (after start-up and the first catch-up). Flat: it grew
 * by less than a fifth, or 32 MB.
 */
function flatness(
  samples: readonly MemorySample[],
  endMs: number,
): { flat: boolean; midMb: number; endMb: number; restarts: number; summary: string } | null {
  const median = (lo: number, hi: number, of: (s: MemorySample) => number | undefined = (s) => s.rssKb / 1024) => {
    const xs = samples
      .filter((s) => s.atMs >= lo && s.atMs < hi)
      .flatMap((s) => {
        const v = of(s)
        return v === undefined ? [] : [v]
      })
      .sort((a, b) => a - b)
    return xs.length === 0 ? undefined : xs[Math.floor(xs.length / 2)]!
  }
  const mid = median(0.4 * endMs, 0.5 * endMs)
  const end = median(0.9 * endMs, endMs)
  // The JavaScript heap alone: what grows there is the peer's own objects, not SQLite's caches.
  const heapMid = median(0.4 * endMs, 0.5 * endMs, (s) => s.heapMb)
  const heapEnd = median(0.9 * endMs, endMs, (s) => s.heapMb)
  const heap =
    heapMid === undefined || heapEnd === undefined
      ? ''
      : `; JavaScript heap ${Math.round(heapMid)} MB and ${Math.round(heapEnd)} MB`
  if (mid === undefined || end === undefined) return null
  const restarts = new Set(samples.map((s) => s.pid)).size - 1
  const flat = end - mid < Math.max(32, mid * 0.2)
  return {
    flat,
    midMb: Math.round(mid),
    endMb: Math.round(end),
    restarts,
    summary: `median ${Math.round(mid)} MB at 40–50 % of the run, ${Math.round(end)} MB at 90–100 % (${restarts} restarts)${heap}`,
  }
}

/**
 * The apps' slowest writes that did not span a freeze of their till (a frozen
 * app's write takes as long as the freeze), slowest first.
 */
function slowWrites(reports: readonly AppReport[], tills: readonly Till[]): string[] {
  return reports
    .flatMap((r) => {
      const till = tills.find((t) => t.name === r.till)
      return r.slowWrites
        .filter(
          (w) => !till?.freezes.some((f) => w.mono[0]! < (f.to ?? Number.POSITIVE_INFINITY) && w.mono[1]! > f.from),
        )
        .map((w) => ({ ...w, till: r.till }))
    })
    .sort((a, b) => b.ms - a.ms)
    .slice(0, 10)
    .map((w) => `${w.till} ${w.what} took ${w.ms} ms, ending ${w.at} (its clock)`)
}

/**
 * What each SQLITE_BUSY an app got overlapped: a freeze of its till, a hold
 * of the write lock by its peer over a second (reported by the peer, with
 * the CPU it used meanwhile and its commit's share), or neither.
 */
function busyCauses(reports: readonly AppReport[], tills: readonly Till[]) {
  const out = { total: 0, duringFreeze: 0, duringPeerHold: 0, neither: 0, samples: [] as string[] }
  for (const r of reports) {
    const till = tills.find((t) => t.name === r.till)
    for (const b of r.busyWrites ?? []) {
      const [from, to] = b.mono as [number, number]
      out.total++
      if (till?.freezes.some((f) => from < (f.to ?? Number.POSITIVE_INFINITY) && to > f.from)) {
        out.duringFreeze++
        continue
      }
      const holds = (till?.holds ?? []).filter((h) => from < h.monotonicMs && to > h.monotonicMs - h.heldMs)
      if (holds.length === 0) {
        out.neither++
        if (out.samples.length < 10) out.samples.push(`${r.till} ${b.what} at ${to}: no hold of the peer over a second`)
        continue
      }
      out.duringPeerHold++
      if (out.samples.length < 10) {
        const h = holds.reduce((a, c) => (c.heldMs > a.heldMs ? c : a))
        out.samples.push(
          `${r.till} ${b.what} at ${to}: peer held the lock ${h.heldMs} ms (CPU ${h.cpuMs} ms, commit ${h.commitMs} ms, ${h.origin}${h.records === undefined ? '' : `, ${h.records} records`})`,
        )
      }
    }
  }
  const holds = tills.flatMap((t) => t.holds)
  const cpuShare = holds.map((h) => h.cpuMs / Math.max(1, h.heldMs)).sort((a, b) => a - b)
  return {
    ...out,
    peerHolds: holds.length,
    peerHoldsOver5s: holds.filter((h) => h.heldMs >= 5000).length,
    longestPeerHoldMs: holds.reduce((m, h) => Math.max(m, h.heldMs), 0),
    medianCpuShareOfHolds:
      cpuShare.length === 0 ? null : Math.round(cpuShare[Math.floor(cpuShare.length / 2)]! * 100) / 100,
  }
}

function sumCounts(reports: readonly AppReport[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const r of reports) for (const [k, v] of Object.entries(r.counts)) out[k] = (out[k] ?? 0) + v
  return out
}

function printSummary(s: Record<string, unknown> & { violations: string[] }, say: (line: string) => void): void {
  say('---- summary')
  say(`faults: ${JSON.stringify(s.faults)}`)
  for (const line of s.skipped as string[]) say(line)
  say(`writes: ${JSON.stringify(s.writes)}`)
  for (const w of s.slowWrites as string[]) say(`slow app write: ${w}`)
  const busy = s.busy as ReturnType<typeof busyCauses>
  say(
    `peers' holds of the write lock over a second: ${busy.peerHolds} (${busy.peerHoldsOver5s} over 5 s, longest ${busy.longestPeerHoldMs} ms, median CPU share ${busy.medianCpuShareOfHolds ?? '-'})`,
  )
  if (busy.total > 0) {
    say(
      `SQLITE_BUSY in the apps: ${busy.total}: ${busy.duringFreeze} during a freeze of the till, ${busy.duringPeerHold} during a hold of its peer over a second, ${busy.neither} during neither`,
    )
    for (const line of busy.samples) say(`  busy: ${line}`)
  }
  say(`rows at the end: ${JSON.stringify(s.rows)} (tables ${SHOP_TABLES.join(', ')})`)
  say(`converged after the heal: ${s.convergedAfterMs === null ? 'never' : `${s.convergedAfterMs} ms`}`)
  for (const p of s.peers as Record<string, unknown>[]) say(`peer ${JSON.stringify(p)}`)
  if (s.violations.length === 0) say('ok: every invariant holds on every till')
  else for (const v of s.violations) say(`VIOLATED: ${v}`)
}

// Peers and apps run in process groups of their own: they go with the harness.
process.on('exit', killAll)
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    killAll()
    process.exit(130)
  })
}

main().then(
  (code) => process.exit(code),
  (error) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`)
    process.exit(2)
  },
)
