import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import type { LockHolder } from '../errors.js'
import { packageVersion } from './version.js'

/** The file beside the lock that says who holds a directory. */
export const OWNER_FILE = 'meshmirror.owner.json'

/** Who holds a persistence directory: written when the lock is taken, for diagnostics. */
export interface OwnerRecord extends LockHolder {
  /** When the holding process started (ISO time). */
  processStartedAt: string
  /** meshmirror version of the holder. */
  version: string
  /** `kernel`: the lock is held by the kernel; `heartbeat`: by this record's heartbeat. */
  lockMode: 'kernel' | 'heartbeat'
  /** Last heartbeat (ISO time); refreshed periodically in heartbeat mode. */
  heartbeatAt: string
}

export function ownRecord(lockMode: OwnerRecord['lockMode']): OwnerRecord {
  const now = new Date().toISOString()
  return {
    pid: process.pid,
    hostname: hostname(),
    command: process.argv.slice(1).join(' ').slice(0, 500),
    acquiredAt: now,
    processStartedAt: new Date(Date.now() - process.uptime() * 1000).toISOString(),
    version: packageVersion(),
    lockMode,
    heartbeatAt: now,
  }
}

export function readOwner(dir: string): OwnerRecord | undefined {
  try {
    const rec = JSON.parse(readFileSync(join(dir, OWNER_FILE), 'utf8')) as OwnerRecord
    return typeof rec.pid === 'number' && typeof rec.hostname === 'string' ? rec : undefined
  } catch {
    return undefined
  }
}

/** Writes the record atomically (a reader never sees half of it). */
export function writeOwner(dir: string, record: OwnerRecord): void {
  const tmp = join(dir, `${OWNER_FILE}.${process.pid}.tmp`)
  writeFileSync(tmp, `${JSON.stringify(record, null, 2)}\n`)
  renameSync(tmp, join(dir, OWNER_FILE))
}

/** Whether a process is alive on this host (undefined when the record is from another host). */
export function isAlive(record: Pick<OwnerRecord, 'pid' | 'hostname'>): boolean | undefined {
  if (record.hostname !== hostname()) return undefined
  try {
    process.kill(record.pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}
