import { existsSync, readdirSync, realpathSync, rmSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { ErrorCode, StorageError } from '../errors.js'
import { dirStats } from './dir-size.js'
import { builtinEngine, type MeshEngine } from './engine.js'
import { heldByThisProcess } from './instance.js'
import { HEARTBEAT_FILE, LOCK_FILE, type LockOptions, probeLock } from './lock.js'
import { type MigratedMarker, readMigrated } from './migration.js'
import { isAlive, type OwnerRecord, readOwner } from './owner.js'

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
  migrated?: MigratedMarker
}

/** Directories under `root` that hold a mesh store (of `engine`) or a meshmirror lock. */
export function listMeshDirs(
  rootInput: string,
  options: { engine?: MeshEngine<{ close(): Promise<void> }>; lock?: LockOptions } = {},
): MeshDirInfo[] {
  const root = checkRoot(rootInput)
  const engine = options.engine ?? builtinEngine()
  const out: MeshDirInfo[] = []
  for (const entry of readdirSync(root, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue
    const dir = join(root, entry.name)
    if (!isMeshDir(dir, engine)) continue
    out.push(describeDir(dir, options.lock))
  }
  return out.sort((a, b) => a.name.localeCompare(b.name))
}

export function isMeshDir(dir: string, engine: MeshEngine<{ close(): Promise<void> }> = builtinEngine()): boolean {
  return engine.isMeshDir(dir) || existsSync(join(dir, LOCK_FILE)) || existsSync(join(dir, HEARTBEAT_FILE))
}

export function describeDir(dirInput: string, lockOptions?: LockOptions): MeshDirInfo {
  const dir = realpathSync(dirInput)
  const { sizeBytes, lastModifiedMs } = dirStats(dir)
  const info: MeshDirInfo = {
    dir,
    name: dir.split('/').pop() ?? dir,
    sizeBytes,
    lastUsedAt: new Date(lastModifiedMs).toISOString(),
    lock: heldByThisProcess(dir) ? 'held-by-this-process' : probeLock(dir, lockOptions),
  }
  const owner = readOwner(dir)
  if (owner) info.owner = { ...owner, alive: isAlive(owner) }
  const migrated = readMigrated(dir)
  if (migrated) info.migrated = migrated
  return info
}

export interface CleanupOptions {
  /** Remove directories unused for longer than this. Default 24 h. */
  olderThanMs?: number
  /** Report what would be removed, remove nothing. */
  dryRun?: boolean
  /** Directories never to remove (e.g. the current one). */
  keep?: readonly string[]
  now?: number
}

export interface CleanupReport {
  root: string
  dryRun: boolean
  removed: MeshDirInfo[]
  kept: { dir: string; reason: string }[]
  freedBytes: number
}

/** Removes old, unlocked mesh directories under `root`. Never removes a locked or kept one. */
export function cleanupMeshDirs(rootInput: string, options: CleanupOptions = {}): CleanupReport {
  const root = checkRoot(rootInput)
  const olderThanMs = options.olderThanMs ?? 24 * 3600 * 1000
  const now = options.now ?? Date.now()
  const keep = new Set((options.keep ?? []).map((k) => (existsSync(k) ? realpathSync(k) : resolve(k))))
  const report: CleanupReport = { root, dryRun: options.dryRun === true, removed: [], kept: [], freedBytes: 0 }
  for (const info of listMeshDirs(root)) {
    const age = now - Date.parse(info.lastUsedAt)
    let reason: string | undefined
    if (keep.has(info.dir)) reason = 'kept by request (current directory)'
    else if (info.lock !== 'free') reason = `in use (${info.lock}${info.owner ? `, pid ${info.owner.pid}` : ''})`
    else if (age < olderThanMs) reason = `used ${Math.round(age / 60000)} min ago`
    if (reason) {
      report.kept.push({ dir: info.dir, reason })
      continue
    }
    if (!report.dryRun) {
      // Re-check just before removing: the directory may have been opened since.
      if (probeLock(info.dir) !== 'free' || heldByThisProcess(info.dir)) {
        report.kept.push({ dir: info.dir, reason: 'opened during cleanup' })
        continue
      }
      rmSync(info.dir, { recursive: true, force: true })
    }
    report.removed.push(info)
    report.freedBytes += info.sizeBytes
  }
  return report
}

function checkRoot(rootInput: string): string {
  const root = resolve(rootInput)
  if (!existsSync(root)) {
    throw new StorageError(ErrorCode.DIRECTORY_UNUSABLE, `${root} does not exist.`, { details: { dir: root } })
  }
  if (!statSync(root).isDirectory()) {
    throw new StorageError(ErrorCode.DIRECTORY_UNUSABLE, `${root} is not a directory.`, { details: { dir: root } })
  }
  return realpathSync(root)
}
