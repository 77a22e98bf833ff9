import { existsSync, mkdirSync, statfsSync, utimesSync } from 'node:fs'
import { join } from 'node:path'
import { AbortError, LockHeldError } from '../errors.js'
import { backoffMs } from '../util/backoff.js'
import { delay } from '../util/delay.js'
import { directoryUnusable } from './fs-errors.js'
import { type KernelHold, kernelHoldIntact, kernelLockHeld, lockKernel } from './kernel-lock.js'
import { isAlive, OWNER_FILE, type OwnerRecord, ownRecord, readOwner, sameOwner } from './owner.js'
import { claimOwnerFile, ownerReplaceable, removeQuietly, sweepClaimLeftovers } from './owner-claim.js'

export { LOCK_FILE } from './kernel-lock.js'

/**
 * How a directory lock is held.
 * - `kernel`: an exclusive POSIX (fcntl) lock taken through SQLite on
 *   `meshmirror.lock`. The kernel drops it when the process dies, however it
 *   dies, so the lock is never stale on a local disk.
 * - `heartbeat`: for file systems whose POSIX locks cannot be trusted (NFS,
 *   SMB, FUSE…): only the owner record, created atomically and touched every
 *   `heartbeatMs`. A record not touched for `staleMs`, or whose process is
 *   gone from this host, is taken over.
 * - `auto` (default): `heartbeat` on network and FUSE file systems, else `kernel`.
 *
 * In both modes the holder keeps its owner record fresh, so processes that
 * chose different modes for one directory still exclude each other.
 */
export type LockMode = 'kernel' | 'heartbeat' | 'auto'

export interface LockOptions {
  mode?: LockMode
  /** How often the holder touches its owner record. Default 2,000 ms. */
  heartbeatMs?: number
  /** Age after which an untouched owner record of a `heartbeat` holder is stale. Default 15,000 ms. */
  staleMs?: number
}

export interface AcquireOptions extends LockOptions {
  /** How long to wait for a held lock; 0 fails at once. */
  timeoutMs: number
  signal?: AbortSignal
  /** Called each time the lock is found held while waiting. */
  onWait?: (holder: OwnerRecord | undefined, waitedMs: number) => void
}

export const DEFAULT_HEARTBEAT_MS = 2_000
export const DEFAULT_STALE_MS = 15_000
/** The longest pause between two attempts while waiting for a held lock. */
const MAX_POLL_MS = 50

// statfs magic numbers of file systems whose POSIX locks are not reliable.
const UNRELIABLE_FS = new Set([
  0x6969, // NFS
  0x517b, // SMB
  0xff534d42, // CIFS
  0xfe534d42, // SMB2
  0x65735546, // FUSE
  0x01021997, // 9P
  0x00c36400, // Ceph
  0x5346414f, // AFS
])

/** True for the `statfs` type of a file system whose POSIX locks cannot be trusted. */
export function isUnreliableFsType(type: number | bigint): boolean {
  return UNRELIABLE_FS.has(Number(type) >>> 0)
}

/** The mode `auto` picks for a directory. */
export function effectiveMode(dir: string, mode: LockMode = 'auto'): 'kernel' | 'heartbeat' {
  if (mode !== 'auto') return mode
  try {
    return isUnreliableFsType(statfsSync(dir).type) ? 'heartbeat' : 'kernel'
  } catch {
    return 'kernel'
  }
}

/** An exclusive hold on a persistence directory for this process. */
export class DirectoryLock {
  private released = false
  private lostReason: string | undefined
  private repaired: string | undefined
  private timer: NodeJS.Timeout | undefined
  /** Called once when a check finds the lock lost. */
  onLost: ((reason: string) => void) | undefined

  private constructor(
    readonly dir: string,
    readonly mode: 'kernel' | 'heartbeat',
    readonly owner: OwnerRecord,
    private readonly kernel: KernelHold | undefined,
    private readonly staleMs: number,
  ) {}

  /** Takes the lock if it is free; returns undefined when another holder has it. */
  static tryAcquire(dir: string, options: LockOptions = {}): DirectoryLock | undefined {
    const mode = effectiveMode(dir, options.mode)
    const staleMs = options.staleMs ?? DEFAULT_STALE_MS
    const kernel = mode === 'kernel' ? lockKernel(dir) : undefined
    if (mode === 'kernel' && !kernel) return undefined
    const owner = ownRecord(mode)
    let claimed = false
    try {
      claimed = claimOwnerFile(dir, owner, kernel !== undefined, staleMs)
    } finally {
      if (!claimed) kernel?.db.close()
    }
    if (!claimed) return undefined
    sweepClaimLeftovers(dir)
    const lock = new DirectoryLock(dir, mode, owner, kernel, staleMs)
    lock.timer = setInterval(() => lock.check(), options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS)
    lock.timer.unref()
    return lock
  }

  /** Takes the lock, waiting with jittered backoff (the event loop keeps running) up to `timeoutMs`. */
  static async acquire(dir: string, options: AcquireOptions): Promise<DirectoryLock> {
    const started = performance.now()
    for (let attempt = 0; ; attempt++) {
      if (options.signal?.aborted) throw new AbortError(options.signal.reason)
      // A cleanup may have removed the directory while we waited: it is then opened anew, empty.
      if (!existsSync(dir)) {
        try {
          mkdirSync(dir, { recursive: true })
        } catch (error) {
          throw directoryUnusable(dir, 'create', error)
        }
      }
      const lock = DirectoryLock.tryAcquire(dir, options)
      if (lock) return lock
      const waited = performance.now() - started
      const holder = readOwner(dir)
      // One quick retry even with no timeout: a probe (`dirs list`, `doctor`) may hold the file for a moment.
      if (waited >= options.timeoutMs && attempt > 0) {
        throw new LockHeldError(dir, holder && { ...holder, alive: isAlive(holder) ?? true }, waited)
      }
      options.onWait?.(holder, waited)
      // A poll is cheap (one failed lock attempt, well under a millisecond); capping the
      // backoff at 50 ms keeps takeover after the holder's death fast.
      const backoff = backoffMs(attempt, { initialMs: 5, maxMs: MAX_POLL_MS, jitter: true })
      await delay(Math.max(1, Math.min(backoff, options.timeoutMs - waited)), options.signal)
    }
  }

  /** True while the lock is ours. */
  get held(): boolean {
    return !this.released && this.lostReason === undefined
  }

  /** Why the lock was lost, once it was. */
  get lost(): string | undefined {
    return this.lostReason
  }

  /** A problem found and repaired by the last check (e.g. a removed owner record written again). */
  takeRepair(): string | undefined {
    const r = this.repaired
    this.repaired = undefined
    return r
  }

  /**
   * Checks the lock against the files (not just memory) and refreshes the
   * heartbeat. A removed owner record is written again when nobody else has
   * claimed the directory; a replaced lock file or a record naming another
   * holder means the lock is lost, for good.
   */
  check(): boolean {
    if (!this.held) return false
    if (this.kernel) {
      const broken = kernelHoldIntact(this.dir, this.kernel)
      if (broken) return this.markLost(broken)
    }
    const file = join(this.dir, OWNER_FILE)
    const rec = readOwner(this.dir)
    if (sameOwner(rec, this.owner)) {
      try {
        const now = new Date()
        utimesSync(file, now, now)
      } catch {
        // Removed in between: found by the next check.
      }
      return true
    }
    if (rec !== undefined) return this.markLost(`${OWNER_FILE} now names process ${rec.pid} on ${rec.hostname}`)
    try {
      if (claimOwnerFile(this.dir, this.owner, this.kernel !== undefined, this.staleMs)) {
        this.repaired = `${OWNER_FILE} had been removed or damaged; it was written again`
        return true
      }
      return this.markLost(`${OWNER_FILE} was replaced by another holder's`)
    } catch (error) {
      // Runs from a timer: a failure here must not become an uncaught exception.
      return this.markLost(`${OWNER_FILE} cannot be written: ${(error as Error).message}`)
    }
  }

  /** Releases the lock: the owner record goes first, the kernel lock last. Idempotent. */
  release(): void {
    if (this.released) return
    this.released = true
    if (this.timer) clearInterval(this.timer)
    // A record without a lock means a crash, so a clean release removes it.
    if (sameOwner(readOwner(this.dir), this.owner)) removeQuietly(join(this.dir, OWNER_FILE))
    this.kernel?.db.close()
  }

  private markLost(reason: string): false {
    this.lostReason = reason
    if (this.timer) clearInterval(this.timer)
    this.onLost?.(reason)
    return false
  }
}

/** Whether a directory's lock is free or held, found without writing anything. */
export function probeLock(dir: string, options: LockOptions = {}): 'free' | 'held' {
  const kernel = effectiveMode(dir, options.mode) === 'kernel'
  if (kernel && kernelLockHeld(dir)) return 'held'
  const rec = readOwner(dir)
  if (!rec) return 'free'
  // In kernel mode the kernel lock was just found free: a kernel-mode record is a crash's leftover.
  return ownerReplaceable(rec, kernel, options.staleMs ?? DEFAULT_STALE_MS) ? 'free' : 'held'
}
