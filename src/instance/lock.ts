import {
  closeSync,
  existsSync,
  openSync,
  renameSync,
  statfsSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeSync,
} from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { AbortError, ErrorCode, LockHeldError, StorageError } from '../errors.js'
import { isAlive, OWNER_FILE, type OwnerRecord, ownRecord, readOwner, writeOwner } from './owner.js'

/** The SQLite file whose exclusive lock marks a directory as in use (kernel mode). */
export const LOCK_FILE = 'meshmirror.lock'
/** The file whose existence and freshness marks a directory as in use (heartbeat mode). */
export const HEARTBEAT_FILE = 'meshmirror.heartbeat'

/**
 * How a directory lock is held.
 * - `kernel`: an exclusive POSIX (fcntl) lock taken through SQLite on
 *   `meshmirror.lock`. The kernel drops it when the process dies, however it
 *   dies, so a lock is never stale on a local disk.
 * - `heartbeat`: for file systems where POSIX locks cannot be trusted (NFS,
 *   SMB, FUSE): a lock file refreshed periodically; one not refreshed for
 *   `staleMs`, or whose holder is gone on this host, is taken over.
 * - `auto` (default): `heartbeat` on network and FUSE file systems, else `kernel`.
 */
export type LockMode = 'kernel' | 'heartbeat' | 'auto'

export interface LockOptions {
  mode?: LockMode
  /** Heartbeat period in heartbeat mode. Default 2,000 ms. */
  heartbeatMs?: number
  /** Age after which a heartbeat lock is stale. Default 15,000 ms. */
  staleMs?: number
}

export interface AcquireOptions extends LockOptions {
  /** How long to wait for a held lock; 0 fails at once. */
  timeoutMs: number
  signal?: AbortSignal
  /** Called each time the lock is found held while waiting. */
  onWait?: (holder: OwnerRecord | undefined, waitedMs: number) => void
}

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

/** The mode `auto` picks for a directory. */
export function effectiveMode(dir: string, mode: LockMode = 'auto'): 'kernel' | 'heartbeat' {
  if (mode !== 'auto') return mode
  try {
    return UNRELIABLE_FS.has(Number(statfsSync(dir).type) >>> 0) ? 'heartbeat' : 'kernel'
  } catch {
    return 'kernel'
  }
}

/** An exclusive hold on a persistence directory for this process. */
export class DirectoryLock {
  private released = false
  private timer: NodeJS.Timeout | undefined

  private constructor(
    readonly dir: string,
    readonly mode: 'kernel' | 'heartbeat',
    readonly owner: OwnerRecord,
    private readonly db: Database.Database | undefined,
  ) {}

  /** Takes the lock if it is free; returns undefined when another holder has it. */
  static tryAcquire(dir: string, options: LockOptions = {}): DirectoryLock | undefined {
    const mode = effectiveMode(dir, options.mode)
    if (mode === 'kernel') {
      const db = lockKernel(dir)
      if (!db) return undefined
      const owner = ownRecord('kernel')
      writeOwner(dir, owner)
      return new DirectoryLock(dir, 'kernel', owner, db)
    }
    const owner = lockHeartbeat(dir, options.staleMs ?? 15_000)
    if (!owner) return undefined
    const lock = new DirectoryLock(dir, 'heartbeat', owner, undefined)
    lock.timer = setInterval(() => lock.beat(), options.heartbeatMs ?? 2_000)
    lock.timer.unref()
    return lock
  }

  /** Takes the lock, waiting with backoff (the event loop keeps running) up to `timeoutMs`. */
  static async acquire(dir: string, options: AcquireOptions): Promise<DirectoryLock> {
    const started = performance.now()
    for (let attempt = 0; ; attempt++) {
      if (options.signal?.aborted) throw new AbortError(options.signal.reason)
      const lock = DirectoryLock.tryAcquire(dir, options)
      if (lock) return lock
      const waited = performance.now() - started
      const holder = readOwner(dir)
      if (waited >= options.timeoutMs) {
        throw new LockHeldError(dir, holder && { ...holder, alive: isAlive(holder) ?? true }, waited)
      }
      options.onWait?.(holder, waited)
      // A poll is cheap (one failed lock attempt); capping the backoff keeps takeover fast.
      const backoff = Math.min(100, 5 * 2 ** attempt) * (0.5 + Math.random() / 2)
      await sleep(Math.min(backoff, options.timeoutMs - waited), options.signal)
    }
  }

  /** True while the lock is still ours (checked against the files, not just memory). */
  verify(): boolean {
    if (this.released) return false
    const rec = readOwner(this.dir)
    if (rec?.pid !== process.pid || rec.acquiredAt !== this.owner.acquiredAt) return false
    if (this.mode === 'kernel') return this.db?.open === true
    return existsSync(join(this.dir, HEARTBEAT_FILE))
  }

  get held(): boolean {
    return !this.released
  }

  /** Releases the lock. Idempotent. */
  release(): void {
    if (this.released) return
    this.released = true
    if (this.timer) clearInterval(this.timer)
    // The owner record goes first: a record without a lock means a crash.
    if (readOwner(this.dir)?.pid === process.pid) removeQuietly(join(this.dir, OWNER_FILE))
    if (this.mode === 'heartbeat') removeQuietly(join(this.dir, HEARTBEAT_FILE))
    this.db?.close()
  }

  private beat(): void {
    const now = new Date()
    try {
      utimesSync(join(this.dir, HEARTBEAT_FILE), now, now)
      writeOwner(this.dir, { ...this.owner, heartbeatAt: now.toISOString() })
    } catch {
      // verify() reports the loss.
    }
  }
}

/** Whether a directory's lock is free, held by another process, or (per `verify`) by us. */
export function probeLock(dir: string, options: LockOptions = {}): 'free' | 'held' {
  const mode = effectiveMode(dir, options.mode)
  if (mode === 'kernel') {
    if (!existsSync(join(dir, LOCK_FILE))) return 'free'
    const db = lockKernel(dir)
    if (!db) return 'held'
    db.close()
    return 'free'
  }
  const file = join(dir, HEARTBEAT_FILE)
  if (!existsSync(file)) return 'free'
  return isStale(dir, options.staleMs ?? 15_000) ? 'free' : 'held'
}

function lockKernel(dir: string): Database.Database | undefined {
  let db: Database.Database | undefined
  try {
    db = new Database(join(dir, LOCK_FILE), { timeout: 0 })
    db.pragma('locking_mode = EXCLUSIVE')
    db.exec('BEGIN EXCLUSIVE')
    db.exec('CREATE TABLE IF NOT EXISTS holder (pid INTEGER NOT NULL)')
    db.prepare('DELETE FROM holder').run()
    db.prepare('INSERT INTO holder (pid) VALUES (?)').run(process.pid)
    db.exec('COMMIT')
    return db
  } catch (error) {
    db?.close()
    const code = (error as { code?: string }).code
    if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') return undefined
    throw new StorageError(
      ErrorCode.DIRECTORY_UNUSABLE,
      `Cannot lock ${dir}: ${(error as Error).message}. Check that the directory is writable.`,
      { cause: error, details: { dir } },
    )
  }
}

function isStale(dir: string, staleMs: number): boolean {
  const rec = readOwner(dir)
  if (rec && isAlive(rec) === false) return true
  try {
    return Date.now() - statSync(join(dir, HEARTBEAT_FILE)).mtimeMs > staleMs
  } catch {
    return true
  }
}

function lockHeartbeat(dir: string, staleMs: number): OwnerRecord | undefined {
  const file = join(dir, HEARTBEAT_FILE)
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx')
      const owner = ownRecord('heartbeat')
      writeSync(fd, `${process.pid}\n`)
      closeSync(fd)
      writeOwner(dir, owner)
      return owner
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new StorageError(ErrorCode.DIRECTORY_UNUSABLE, `Cannot lock ${dir}: ${(error as Error).message}.`, {
          cause: error,
          details: { dir },
        })
      }
      if (!isStale(dir, staleMs)) return undefined
      // Move the stale file aside first, so two processes cannot both break it and both win.
      try {
        const aside = `${file}.stale-${process.pid}-${Date.now()}`
        renameSync(file, aside)
        unlinkSync(aside)
      } catch {
        return undefined
      }
    }
  }
  return undefined
}

function removeQuietly(file: string): void {
  try {
    unlinkSync(file)
  } catch {
    // Already gone.
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = () => {
      clearTimeout(timer)
      reject(new AbortError(signal?.reason))
    }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
