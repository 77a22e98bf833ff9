import { linkSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { ErrorCode, StorageError } from '../errors.js'
import { isAlive, OWNER_FILE, type OwnerRecord, readOwner, sameOwner } from './owner.js'

/**
 * Whether an existing owner record may be replaced: its holder is provably
 * gone (a kernel-mode holder while we hold the kernel lock, a dead process on
 * this host) or its heartbeat is older than `staleMs`.
 */
export function ownerReplaceable(rec: OwnerRecord | undefined, kernelHeld: boolean, staleMs: number): boolean {
  if (rec === undefined) return kernelHeld
  if (kernelHeld && rec.lockMode === 'kernel') return true
  if (isAlive(rec) === false) return true
  return Date.now() - Date.parse(rec.heartbeatAt) > staleMs
}

/**
 * Creates the owner record atomically (hard link of a complete file: readers
 * never see half a record, and of two racing creators exactly one wins),
 * breaking a replaceable record first. False when another holder keeps it.
 */
export function claimOwnerFile(dir: string, owner: OwnerRecord, kernelHeld: boolean, staleMs: number): boolean {
  const file = join(dir, OWNER_FILE)
  const tmp = join(dir, `${OWNER_FILE}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`)
  const unusable = (error: unknown) =>
    new StorageError(ErrorCode.DIRECTORY_UNUSABLE, `Cannot write ${file}: ${(error as Error).message}.`, {
      cause: error,
      details: { dir },
    })
  try {
    writeFileSync(tmp, `${JSON.stringify(owner, null, 2)}\n`)
  } catch (error) {
    // A full disk can leave part of the file.
    removeQuietly(tmp)
    throw unusable(error)
  }
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        linkSync(tmp, file)
        return true
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw unusable(error)
      }
      const existing = readOwner(dir)
      if (existing === undefined && !kernelHeld && !isOld(file, staleMs)) return false
      if (existing !== undefined && !ownerReplaceable(existing, kernelHeld, staleMs)) return false
      // Move the old record aside, then make sure it is the one judged replaceable:
      // between our read and the move, another process may have broken it and written its own.
      const aside = `${file}.stale-${process.pid}-${attempt}`
      try {
        renameSync(file, aside)
      } catch {
        continue
      }
      const moved = readRecordFile(aside)
      if (existing !== undefined && !sameOwner(moved, existing)) {
        try {
          linkSync(aside, file)
        } catch {
          // Someone claimed it meanwhile; either way it is not ours.
        }
        removeQuietly(aside)
        return false
      }
      removeQuietly(aside)
    }
    return false
  } finally {
    removeQuietly(tmp)
  }
}

function readRecordFile(file: string): OwnerRecord | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as OwnerRecord
  } catch {
    return undefined
  }
}

function isOld(file: string, staleMs: number): boolean {
  try {
    return Date.now() - statSync(file).mtimeMs > staleMs
  } catch {
    return true
  }
}

export function removeQuietly(file: string): void {
  try {
    unlinkSync(file)
  } catch {
    // Already gone.
  }
}

/** Files a claim writes for a moment: `<owner>.<pid>.<random>.tmp` and `<owner>.stale-<pid>-<attempt>`. */
const CLAIM_LEFTOVER = new RegExp(
  `^${OWNER_FILE.replace(/\./g, '\\.')}\\.(?:(\\d+)\\.[a-z0-9]*\\.tmp|stale-(\\d+)-\\d+)$`,
)

/**
 * Removes what claims by processes killed in the middle of one left in
 * `dir` (call while holding it): files older than `minAgeMs` whose process
 * is gone from this host. A claim in progress elsewhere (another host on a
 * shared disk) keeps its files for milliseconds, not `minAgeMs`.
 */
export function sweepClaimLeftovers(dir: string, minAgeMs = 60_000): number {
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch {
    return 0
  }
  let removed = 0
  for (const name of names) {
    const m = CLAIM_LEFTOVER.exec(name)
    if (!m) continue
    const pid = Number(m[1] ?? m[2])
    if (pid === process.pid || isAlive({ pid, hostname: hostname() }) !== false) continue
    const file = join(dir, name)
    if (!isOld(file, minAgeMs)) continue
    removeQuietly(file)
    removed++
  }
  return removed
}
