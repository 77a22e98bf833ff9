import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { Command } from 'commander'
import { diagnoseMeshDir } from '../config/mesh-backend.js'
import {
  describeChangeDetection,
  type PeerSnapshot,
  readSnapshot,
  snapshotWarnings,
} from '../config/status-snapshot.js'
import { readStoreConflicts } from '../engine/conflict-log.js'
import { STORE_FILE } from '../engine/database.js'
import type { Diagnosis } from '../instance/doctor.js'
import { ExitCode, makeOutput, reportError } from './output.js'
import { statusLine } from './peer-display.js'

const HELP = `
Examples:
  $ meshmirror status --dir ./pos-mesh
  $ meshmirror status --dir ./pos-mesh --json | jq .snapshot.collections

Exit codes:
  0  a peer is running on the directory
  1  wrong input: the directory is missing, a file, unreadable, or holds no mesh store
  2  an unexpected failure
  3  no peer is running on it (stopped, ended without closing, or never ran)`

/** What `meshmirror status` reports. */
export interface StatusReport {
  dir: string
  running: boolean
  /** `running`, `stopped`, `crashed` (ended without closing), `held` (by a process that writes no status), `never-ran`. */
  state: 'running' | 'stopped' | 'crashed' | 'held' | 'never-ran'
  lock: Diagnosis['info']['lock']
  owner?: { pid: number; hostname: string; alive: boolean | undefined }
  /** The running peer's latest snapshot, or the last one a peer left. */
  snapshot?: PeerSnapshot
  /** Seconds since the snapshot was written. */
  ageSeconds?: number
  /** Versions that lost a merge, kept in the store (`meshmirror conflicts` lists them); absent when the store cannot be read. */
  conflicts?: number
  /** What deserves attention in the snapshot: unencrypted replication links. */
  warnings: string[]
}

/** Reads a mesh directory's state from outside: its lock and owner, and the snapshot its peer keeps. */
export function readStatus(dir: string): StatusReport {
  const d = diagnoseMeshDir(dir)
  const snapshot = readSnapshot(d.dir)
  const owner = d.info.owner
  const held = d.info.lock !== 'free' || d.status === 'held'
  let state: StatusReport['state']
  if (held) state = snapshot && snapshot.pid === owner?.pid && snapshot.phase !== 'stopped' ? 'running' : 'held'
  else if (!snapshot) state = 'never-ran'
  else state = snapshot.phase === 'stopped' ? 'stopped' : 'crashed'
  const conflicts = conflictCount(d.dir)
  return {
    dir: d.dir,
    running: state === 'running',
    state,
    lock: d.info.lock,
    ...(owner ? { owner: { pid: owner.pid, hostname: owner.hostname, alive: owner.alive } } : {}),
    ...(snapshot
      ? { snapshot, ageSeconds: Math.max(0, Math.round((Date.now() - Date.parse(snapshot.updatedAt)) / 100) / 10) }
      : {}),
    ...(conflicts === undefined ? {} : { conflicts }),
    warnings: snapshot ? snapshotWarnings(snapshot) : [],
  }
}

/** The store's conflict count, read without a lock; undefined when there is no readable builtin store. */
function conflictCount(dir: string): number | undefined {
  const file = join(dir, STORE_FILE)
  if (!existsSync(file)) return undefined
  try {
    return readStoreConflicts(file, { limit: 1 }).total
  } catch {
    // An unreadable store is what doctor reports; the status stays readable.
    return undefined
  }
}

function describe(r: StatusReport): string[] {
  const s = r.snapshot
  const head: Record<StatusReport['state'], string> = {
    running: `running (pid ${r.owner?.pid}, since ${s?.startedAt})`,
    held: `in use by pid ${r.owner?.pid ?? '?'}, which writes no status (not a meshmirror peer, or still opening)`,
    stopped: `not running; last peer stopped cleanly at ${s?.updatedAt}`,
    crashed: `not running; last peer (pid ${s?.pid}) ended without closing, last seen ${s?.updatedAt}. Nothing it committed is lost: start it again`,
    'never-ran': 'no peer has run on it (no status snapshot)',
  }
  const lines = [`${r.dir}: ${head[r.state]}`]
  if (s) lines.push(...describeSnapshot(s, r.ageSeconds))
  if (r.conflicts !== undefined) {
    lines.push(
      `  conflicts  ${r.conflicts}${r.conflicts > 0 ? ` (versions that lost a merge, kept: meshmirror conflicts --dir ${r.dir})` : ''}`,
    )
  }
  return lines
}

function describeSnapshot(s: PeerSnapshot, ageSeconds: number | undefined): string[] {
  const lines: string[] = []
  lines.push(`  status     ${statusLine(s)} (${ageSeconds} s ago)`)
  lines.push(`  database   ${s.database}`)
  if (s.changeDetection) lines.push(`  app writes ${describeChangeDetection(s.changeDetection)}`)
  if (s.repository) {
    const r = s.repository
    const oldest =
      r.outbox.oldestAt === null ? '' : `, oldest ${Math.max(0, Date.parse(s.updatedAt) - r.outbox.oldestAt)} ms`
    lines.push(
      `  repository postgres: pool ${r.pool.total}/${r.pool.size} connections (${r.pool.idle} idle, ${r.pool.waiting} waiting), outbox ${r.outbox.depth}${oldest}, ${r.listening ? 'listening' : 'NOT LISTENING (reconnecting)'}`,
    )
  }
  lines.push(
    `  mesh       ${s.meshId}, site ${s.siteId}${s.listen ? `, listening on ${s.listen.host}:${s.listen.port}` : ''}`,
  )
  for (const p of s.peers) {
    const plain = p.security === 'insecure' ? ' NOT ENCRYPTED' : ''
    lines.push(
      `  peer       ${p.site ?? '?'} ${p.direction} ${p.remote} ${p.state}${plain}${p.throttled ? `, throttled ${p.throttled}×` : ''}${p.lastError ? ` (${p.lastError})` : ''}`,
    )
  }
  if (s.hub) {
    const h = s.hub
    const position = Object.values(h.position)
    lines.push(
      `  hub        ${h.server ?? '?'} ${h.state}, ${h.prefix} in bucket ${h.bucket}, position ${position.length ? Math.max(...position) : 0}, lag ${h.lag}, unsent ${h.unpushed}, sent ${h.pushed}, received ${h.received}${h.caughtUp ? '' : ', catching up'}${h.lastError ? ` (${h.lastError})` : ''}`,
    )
  }
  for (const [c, n] of Object.entries(s.collections)) {
    const table = s.tables[c]
    lines.push(`  ${c.padEnd(10)} ${n} documents${table === undefined ? '' : `, ${table} rows`}`)
  }
  if (s.memory) {
    lines.push(
      `  memory     ${s.memory.rssMb} MB resident, ${s.memory.heapUsedMb} MB of JavaScript heap in use, ${s.memory.externalMb} MB outside it`,
    )
  }
  const y = s.sync
  lines.push(
    `  sync       applied ${y.applied}, sent ${y.pushed}, rejected ${y.rejected}, parked ${y.parked ?? 0}, refused ${y.refused ?? 0}, errors ${y.errors}, busy retries ${y.busyRetries}, queue ${y.queueDepth}, local lag ${y.localLagMs} ms`,
  )
  if (y.verify && y.verify.runs > 0 && y.verify.lastAt !== null)
    lines.push(
      `  verified   ${y.verify.runs}× against the mesh, last ${new Date(y.verify.lastAt).toISOString()}, ${y.verify.drifted} documents found out of step`,
    )
  if (s.progress)
    lines.push(
      `  progress   ${s.progress.phase} ${s.progress.model ?? ''} ${s.progress.done}/${s.progress.total ?? '?'}`,
    )
  if (s.lastError) lines.push(`  last error ${s.lastError}`)
  for (const w of snapshotWarnings(s)) lines.push(`  warning    ${w}`)
  return lines
}

/** `meshmirror status --dir D [--json]`. */
export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description('the state of the peer running on a mesh directory, read from outside')
    .requiredOption('--dir <dir>', 'the mesh directory (the config\'s "mesh.dir")')
    .option('--json', 'print one JSON document on stdout')
    .addHelpText('after', HELP)
    .action((opts: { dir: string; json?: boolean }) => {
      const output = makeOutput(opts.json === true)
      try {
        const report = readStatus(opts.dir)
        if (output.json) output.out(JSON.stringify(report, null, 2))
        else output.out(describe(report).join('\n'))
        if (!report.running) process.exitCode = ExitCode.NEEDS_ATTENTION
      } catch (error) {
        process.exitCode = reportError(output, error)
      }
    })
}
