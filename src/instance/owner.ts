import { readFileSync, statSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import type { LockHolder } from '../errors.js'
import { packageVersion } from './version.js'

/**
 * The file beside the lock that says who holds a directory. It is created
 * atomically when the lock is taken, its modification time is the holder's
 * heartbeat, and a clean close removes it.
 */
export const OWNER_FILE = 'meshmirror.owner.json'

/** Who holds a persistence directory: written when the lock is taken. */
export interface OwnerRecord extends LockHolder {
  /** When the holding process started (ISO time). */
  processStartedAt: string
  /** meshmirror version of the holder. */
  version: string
  /** `kernel`: the lock is held by the kernel; `heartbeat`: only by this record's heartbeat. */
  lockMode: 'kernel' | 'heartbeat'
  /** Last heartbeat (ISO time): the record file's modification time. */
  heartbeatAt: string
}

export function ownRecord(lockMode: OwnerRecord['lockMode']): OwnerRecord {
  const now = new Date().toISOString()
  const started = processStartMs(process.pid) ?? Date.now() - process.uptime() * 1000
  return {
    pid: process.pid,
    hostname: hostname(),
    command: [process.argv0, ...process.execArgv, ...process.argv.slice(1)].join(' ').slice(0, 500),
    acquiredAt: now,
    processStartedAt: new Date(started).toISOString(),
    version: packageVersion(),
    lockMode,
    heartbeatAt: now,
  }
}

/** The owner record of `dir`, with `heartbeatAt` from the file's modification time. */
export function readOwner(dir: string): OwnerRecord | undefined {
  const file = join(dir, OWNER_FILE)
  try {
    const rec = JSON.parse(readFileSync(file, 'utf8')) as OwnerRecord
    if (typeof rec.pid !== 'number' || typeof rec.hostname !== 'string') return undefined
    rec.heartbeatAt = new Date(statSync(file).mtimeMs).toISOString()
    return rec
  } catch {
    return undefined
  }
}

/** True when two records describe the same acquisition. */
export function sameOwner(a: OwnerRecord | undefined, b: OwnerRecord | undefined): boolean {
  return (
    a !== undefined && b !== undefined && a.pid === b.pid && a.hostname === b.hostname && a.acquiredAt === b.acquiredAt
  )
}

/**
 * Whether the process of a record is alive. Undefined when the record is from
 * another host. On Linux a pid reused by a later process is recognised by its
 * start time, and reported as not alive.
 */
export function isAlive(
  record: Pick<OwnerRecord, 'pid' | 'hostname'> & { processStartedAt?: string },
): boolean | undefined {
  if (record.hostname !== hostname()) return undefined
  try {
    process.kill(record.pid, 0)
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
  const started = processStartMs(record.pid)
  const recorded = record.processStartedAt === undefined ? Number.NaN : Date.parse(record.processStartedAt)
  if (started !== undefined && Number.isFinite(recorded) && Math.abs(started - recorded) > 2000) return false
  return true
}

let bootMs: number | undefined

/** Start time of a process from `/proc` (Linux), in ms since the epoch; undefined elsewhere. */
export function processStartMs(pid: number): number | undefined {
  try {
    bootMs ??= Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]) * 1000
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name (which may contain spaces); field 22 is the start time in clock ticks.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const ticks = Number(fields[19])
    // USER_HZ is 100 on every Linux architecture Node supports.
    return Number.isFinite(bootMs) && Number.isFinite(ticks) ? bootMs + ticks * 10 : undefined
  } catch {
    return undefined
  }
}
