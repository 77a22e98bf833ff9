import { existsSync, readdirSync, realpathSync, rmSync, statSync } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import { ErrorCode, type MeshmirrorError, StorageError, ValidationError } from '../errors.js'
import { dirStats } from './dir-size.js'
import { directoryUnusable } from './fs-errors.js'
import { LOCK_FILE } from './kernel-lock.js'
import { DirectoryLock, type LockOptions, probeLock } from './lock.js'
import type { MeshEngine } from './mesh-engine.js'
import { type MigratedMarker, readMigrated } from './migrated-marker.js'
import { heldByThisProcess } from './open-instances.js'
import { isAlive, OWNER_FILE, type OwnerRecord, readOwner } from './owner.js'

/** An engine of any store kind: listing and cleaning directories only opens and closes stores. */
export type AnyEngine = MeshEngine<{ close(): Promise<void> }>

/** Options with the engine named: the instance manager has no default engine of its own. */
export type WithEngine<T extends { engine?: AnyEngine }> = T & { engine: AnyEngine }

/** One mesh directory under a root. */
export interface MeshDirInfo {
  dir: string
  name: string
  sizeBytes: number
  /** Newest modification of any file in it (ISO time). */
  lastUsedAt: string
  lock: 'free' | 'held' | 'held-by-this-process'
  /** The owner record, with whether that process is alive (undefined: another host). */
  owner?: OwnerRecord & { alive: boolean | undefined }
  /** Present when its documents were merged into another directory. */
  migrated?: MigratedMarker
}

export interface ListOptions {
  /** Whose directories to recognise. Default (through the package entry): the builtin engine. */
  engine?: AnyEngine
  lock?: LockOptions
  /** Only directories whose name matches. */
  names?: RegExp
}

/**
 * Mesh directories directly under `root` (those holding a store of the
 * engine, or a meshmirror lock), sorted by name. Reads only: probing a lock
 * writes nothing, so listing does not change any directory's last use.
 */
export function listEngineDirs(rootInput: string, options: WithEngine<ListOptions>): MeshDirInfo[] {
  const engine = options.engine
  const root = resolveMeshRoot(rootInput, engine)
  let entries: import('node:fs').Dirent[]
  try {
    entries = readdirSync(root, { withFileTypes: true })
  } catch (error) {
    throw directoryUnusable(root, 'list', error)
  }
  const out: MeshDirInfo[] = []
  for (const entry of entries) {
    if (!entry.isDirectory() || (options.names && !options.names.test(entry.name))) continue
    const dir = join(root, entry.name)
    if (!isMeshDir(dir, engine)) continue
    out.push(describeDir(dir, options.lock))
  }
  return out.sort((a, b) => a.name.localeCompare(b.name))
}

/** True when `dir` holds a store of `engine` or a meshmirror lock. */
export function isMeshDir(dir: string, engine: AnyEngine): boolean {
  return engine.isMeshDir(dir) || existsSync(join(dir, LOCK_FILE)) || existsSync(join(dir, OWNER_FILE))
}

/** Size, last use, lock state, owner and migration marker of one directory. */
export function describeDir(dirInput: string, lockOptions?: LockOptions): MeshDirInfo {
  let dir: string
  let stats: { sizeBytes: number; lastModifiedMs: number }
  try {
    dir = realpathSync(dirInput)
    stats = dirStats(dir)
  } catch (error) {
    throw directoryUnusable(resolve(dirInput), 'read', error)
  }
  const info: MeshDirInfo = {
    dir,
    name: basename(dir),
    sizeBytes: stats.sizeBytes,
    lastUsedAt: new Date(stats.lastModifiedMs).toISOString(),
    lock: heldByThisProcess(dir) ? 'held-by-this-process' : probeLock(dir, lockOptions),
  }
  const owner = readOwner(dir)
  if (owner) info.owner = { ...owner, alive: isAlive(owner) }
  const migrated = readMigrated(dir)
  if (migrated) info.migrated = migrated
  return info
}

export interface CleanupOptions extends ListOptions {
  /** Remove directories unused for longer than this. Default 24 h. */
  olderThanMs?: number
  /** Report what would be removed, remove nothing. */
  dryRun?: boolean
  /** Directories never to remove (e.g. the current one). */
  keep?: readonly string[]
  /** The current time, in ms since the epoch. */
  now?: number
}

export interface CleanupReport {
  root: string
  dryRun: boolean
  olderThanMs: number
  /** Removed (or, in a dry run, would be removed). */
  removed: MeshDirInfo[]
  kept: { dir: string; reason: string }[]
  /** Directories that could not be removed (left as they were, or partly removed). */
  failed: { dir: string; code: string; error: string }[]
  freedBytes: number
}

/**
 * Removes mesh directories under `root` unused for longer than
 * `olderThanMs`. Never removes a directory that is locked, open in this
 * process, or in `keep`: each one is locked by the cleanup itself while it
 * is removed, so a process opening it at that moment waits and then finds it
 * gone instead of losing writes.
 */
export function cleanupEngineDirs(rootInput: string, options: WithEngine<CleanupOptions>): CleanupReport {
  const olderThanMs = options.olderThanMs ?? 24 * 3600 * 1000
  if (!(olderThanMs >= 0)) {
    throw new ValidationError(ErrorCode.INVALID_OPTIONS, 'cleanupMeshDirs: olderThanMs must be a number >= 0.')
  }
  const list = listEngineDirs(rootInput, options)
  const root = resolveMeshRoot(rootInput, options.engine)
  const now = options.now ?? Date.now()
  const keep = new Set((options.keep ?? []).map((k) => (existsSync(k) ? realpathSync(k) : resolve(k))))
  const report: CleanupReport = {
    root,
    dryRun: options.dryRun === true,
    olderThanMs,
    removed: [],
    kept: [],
    failed: [],
    freedBytes: 0,
  }
  for (const info of list) {
    const age = now - Date.parse(info.lastUsedAt)
    let reason: string | undefined
    if (keep.has(info.dir)) reason = 'kept by request'
    else if (info.lock !== 'free') reason = `in use (${info.lock}${info.owner ? `, pid ${info.owner.pid}` : ''})`
    else if (age < olderThanMs) reason = `used ${formatAge(age)} ago`
    if (reason) {
      report.kept.push({ dir: info.dir, reason })
      continue
    }
    if (!report.dryRun) {
      const failure = removeLocked(info.dir, options.lock)
      if (failure === 'in-use') {
        report.kept.push({ dir: info.dir, reason: 'opened during cleanup' })
        continue
      }
      if (failure) {
        report.failed.push({ dir: info.dir, code: failure.code, error: failure.message })
        continue
      }
    }
    report.removed.push(info)
    report.freedBytes += info.sizeBytes
  }
  return report
}

/** Removes a directory while holding its lock. */
function removeLocked(dir: string, lockOptions?: LockOptions): 'in-use' | MeshmirrorError | undefined {
  if (heldByThisProcess(dir)) return 'in-use'
  let lock: DirectoryLock | undefined
  try {
    lock = DirectoryLock.tryAcquire(dir, lockOptions)
    if (!lock) return 'in-use'
    rmSync(dir, { recursive: true, force: true })
    return undefined
  } catch (error) {
    return directoryUnusable(dir, 'remove', error)
  } finally {
    lock?.release()
  }
}

/**
 * The absolute real path of a root of mesh directories. Throws
 * `DIRECTORY_UNUSABLE` when it is missing, a file or unreadable, and
 * `INVALID_OPTIONS` when it is itself a mesh directory.
 */
export function resolveMeshRoot(rootInput: string, engine: AnyEngine): string {
  if (typeof rootInput !== 'string' || rootInput.length === 0) {
    throw new ValidationError(ErrorCode.INVALID_OPTIONS, 'The root must be a non-empty path.')
  }
  const abs = resolve(rootInput)
  let root: string
  try {
    if (!statSync(abs).isDirectory()) {
      throw new StorageError(ErrorCode.DIRECTORY_UNUSABLE, `${abs} is a file; the root must be a directory.`, {
        details: { dir: abs },
      })
    }
    root = realpathSync(abs)
  } catch (error) {
    throw directoryUnusable(abs, 'use', error)
  }
  if (isMeshDir(root, engine)) {
    throw new ValidationError(
      ErrorCode.INVALID_OPTIONS,
      `${root} is itself a mesh directory; the root is the directory that holds mesh directories (here ${dirname(root)}).`,
      { details: { dir: root } },
    )
  }
  return root
}

function formatAge(ms: number): string {
  if (ms < 3_600_000) return `${Math.max(0, Math.round(ms / 60_000))} min`
  if (ms < 172_800_000) return `${Math.round(ms / 3_600_000)} h`
  return `${Math.round(ms / 86_400_000)} d`
}
