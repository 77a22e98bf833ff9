/**
 * The chaos suite: real `meshmirror peer` processes over real SQLite
 * databases that apps write continuously, beaten on by a seeded fault
 * schedule (SIGKILL at any moment, frozen tills, partitions one way and both
 * ways, slow and dropped links through TCP proxies). Then every fault is
 * healed, and once the tills are quiet every invariant is checked on every
 * till. Exits 1 when one is violated.
 *
 *   npm run chaos -- [--short] [--tills 3] [--duration 240] [--seed N] [--rate 40] [--kill-every 4]
 *                    [--partition-every 20] [--freeze-every 45] [--max-freeze 30] [--converge-timeout 120]
 *                    [--json] [--keep] [--from-source]
 *
 * --short is the CI form: 40 s of faults on seed 17. Times are in seconds; "every" is a mean.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import Database from 'better-sqlite3'
import { agreed, snapshot, type TillSnapshot, violations } from './check.js'
import { FaultInjector } from './faults.js'
import { Network } from './network.js'
import { prepareRuntime } from './runtime.js'
import { makeSchedule } from './schedule.js'
import { type AppReport, peerConfig, SHOP_DDL, SHOP_TABLES } from './shop.js'
import { Till } from './till.js'

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
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--short') continue
    if (arg === '--json') o.json = true
    else if (arg === '--keep') o.keep = true
    else if (arg === '--from-source') o.fromSource = true
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
  const schedule = makeSchedule({
    seed: o.seed,
    tills: o.tills,
    durationMs: o.durationS * 1000,
    killEveryMs: o.killEveryS * 1000,
    partitionEveryMs: o.partitionEveryS * 1000,
    freezeEveryMs: o.freezeEveryS * 1000,
    linkEveryMs: 6000,
    maxFreezeMs: o.maxFreezeS * 1000,
  })
  say(
    `chaos: ${o.tills} tills, ${o.durationS} s of faults, seed ${o.seed}, ${o.rate} writes/s per till, ${schedule.length} faults scheduled`,
  )
  say(
    `reproduce: npm run chaos -- --tills ${o.tills} --duration ${o.durationS} --seed ${o.seed} --rate ${o.rate} --kill-every ${o.killEveryS} --partition-every ${o.partitionEveryS} --freeze-every ${o.freezeEveryS} --max-freeze ${o.maxFreezeS}`,
  )
  say(`files: ${root}`)
  writeFileSync(join(root, 'schedule.json'), JSON.stringify(schedule, null, 1))

  const ports = await Promise.all(Array.from({ length: o.tills }, freePort))
  const network = await Network.open(ports, ['--import', 'tsx'])
  const tills = ports.map((port, i) => {
    const dir = join(root, `till-${i + 1}`)
    mkdirSync(dir)
    const db = new Database(join(dir, 'till.db'))
    db.pragma('journal_mode = WAL')
    db.exec(SHOP_DDL)
    db.close()
    const configFile = join(dir, 'meshmirror.config.json')
    const peers = ports.flatMap((_, j) => (j === i ? [] : [network.url(i, j)]))
    writeFileSync(configFile, JSON.stringify(peerConfig(dir, port, peers), null, 2))
    return new Till(i, dir, configFile, runtime)
  })
  const injector = new FaultInjector(tills, network, say)
  const memory = setInterval(() => {
    for (const t of tills) t.sampleMemory()
  }, 1000)
  let reports: AppReport[] = []
  let problems: string[] = []
  let convergedAfterMs: number | null = null
  let finalSnapshots: TillSnapshot[] = []
  let progress: NodeJS.Timeout | undefined
  try {
    tills.forEach((t, i) => {
      t.startApp(o.seed * 31 + i, o.rate, i === 0)
      t.startPeer()
    })
    await waitUntil(() => tills.every((t) => t.state === 'live' && t.selling), 120_000, 'every till live and selling')
    say('every till is live and selling; faults begin')
    const start = performance.now()
    progress = setInterval(() => say(progressLine(tills, injector.counts)), 5000)
    for (const f of schedule) {
      const wait = start + f.at - performance.now()
      if (wait > 0) await sleep(wait)
      await injector.apply(f)
    }
    const left = start + o.durationS * 1000 - performance.now()
    if (left > 0) await sleep(left)
    clearInterval(progress)
    say('faults end: the apps stop selling, every fault is healed')
    reports = (await Promise.all(tills.map((t) => t.stopApp()))).filter((r): r is AppReport => r !== undefined)
    writeFileSync(join(root, 'apps.json'), JSON.stringify(reports))
    if (reports.length < tills.length)
      problems.push(`${tills.length - reports.length} apps did not report what they wrote`)
    await injector.heal()
    const healedAt = performance.now()
    await waitUntil(() => tills.every((t) => t.state === 'live'), 120_000, 'every peer live again')
    convergedAfterMs = await converge(tills, o.convergeTimeoutS * 1000, healedAt)
    if (convergedAfterMs === null) problems.push(`the tills did not agree within ${o.convergeTimeoutS} s of the heal`)
    else say(`converged ${(convergedAfterMs / 1000).toFixed(1)} s after the heal`)
    for (const t of tills) {
      t.supervised = false
      const how = await t.terminate(30_000)
      if (how === 'killed') problems.push(`${t.name}: did not stop within 30 s of SIGTERM`)
      else if (how !== 0) problems.push(`${t.name}: stopped with exit code ${how}`)
    }
    finalSnapshots = tills.map((t) => snapshot(t.name, t.dbFile))
    problems = [...problems, ...violations(finalSnapshots, reports)]
    for (const t of tills) {
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
  }
  const summary = {
    ok: problems.length === 0,
    seed: o.seed,
    tills: o.tills,
    durationS: o.durationS,
    writesPerSecondPerTill: o.rate,
    faults: injector.counts,
    writes: sumCounts(reports),
    rows: finalSnapshots[0]?.rows ?? {},
    convergedAfterMs: convergedAfterMs === null ? null : Math.round(convergedAfterMs),
    peers: tills.map((t) => ({
      till: t.name,
      starts: t.stats.starts,
      slowestStartMs: Math.round(t.stats.slowestStartMs),
      maxRssMb: Math.round(t.stats.maxRssKb / 1024),
      syncErrors: t.stats.syncErrors,
      rejected: t.stats.rejected,
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

function sumCounts(reports: readonly AppReport[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const r of reports) for (const [k, v] of Object.entries(r.counts)) out[k] = (out[k] ?? 0) + v
  return out
}

function printSummary(s: Record<string, unknown> & { violations: string[] }, say: (line: string) => void): void {
  say('---- summary')
  say(`faults: ${JSON.stringify(s.faults)}`)
  say(`writes: ${JSON.stringify(s.writes)}`)
  say(`rows at the end: ${JSON.stringify(s.rows)} (tables ${SHOP_TABLES.join(', ')})`)
  say(`converged after the heal: ${s.convergedAfterMs === null ? 'never' : `${s.convergedAfterMs} ms`}`)
  for (const p of s.peers as Record<string, unknown>[]) say(`peer ${JSON.stringify(p)}`)
  if (s.violations.length === 0) say('ok: every invariant holds on every till')
  else for (const v of s.violations) say(`VIOLATED: ${v}`)
}

main().then(
  (code) => process.exit(code),
  (error) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`)
    process.exit(2)
  },
)
