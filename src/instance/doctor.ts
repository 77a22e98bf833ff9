import { statSync } from 'node:fs'
import { resolve } from 'node:path'
import { ErrorCode, StorageError } from '../errors.js'
import { type AnyEngine, describeDir, isMeshDir, type MeshDirInfo } from './dirs.js'
import { directoryUnusable } from './fs-errors.js'
import { effectiveMode, type LockOptions } from './lock.js'

/** What `meshmirror doctor` finds in a mesh directory. */
export interface Diagnosis {
  dir: string
  /**
   * - `free`: it can be opened now.
   * - `free-after-crash`: it can be opened now; its last holder ended without closing.
   * - `held`: another process holds it.
   * - `held-by-this-process`: this process has it open.
   * - `unreadable`: its store cannot be read by this meshmirror (damaged, or another format).
   */
  status: 'free' | 'free-after-crash' | 'held' | 'held-by-this-process' | 'unreadable'
  /** True when it can be opened now. */
  ok: boolean
  info: MeshDirInfo
  /** How its lock is taken on this file system. */
  lockMode: 'kernel' | 'heartbeat'
  /** The store's on-disk format version, when readable. */
  storeVersion?: string
  /** The store's site id, when readable. */
  siteId?: string
  /** Plain-language findings, most important first. */
  findings: string[]
}

/**
 * Examines a mesh directory of `engine` without changing it. Throws
 * `DIRECTORY_UNUSABLE` when it does not exist, is a file or cannot be read,
 * and `STORE_INCOMPATIBLE` when it holds no meshmirror store.
 */
export function diagnoseDir(dirInput: string, engine: AnyEngine, lockOptions?: LockOptions): Diagnosis {
  const dir = resolve(dirInput)
  try {
    if (!statSync(dir).isDirectory()) {
      throw new StorageError(ErrorCode.DIRECTORY_UNUSABLE, `${dir} is a file, not a mesh directory.`, {
        details: { dir },
      })
    }
  } catch (error) {
    throw directoryUnusable(dir, 'examine', error)
  }
  if (!isMeshDir(dir, engine)) {
    throw new StorageError(
      ErrorCode.STORE_INCOMPATIBLE,
      `${dir} holds no meshmirror store (opening it would create a new, empty one). Check the path.`,
      { details: { dir } },
    )
  }
  const info = describeDir(dir, lockOptions)
  const owner = info.owner
  const d: Diagnosis = {
    dir: info.dir,
    status: info.lock === 'free' ? (owner ? 'free-after-crash' : 'free') : info.lock,
    ok: info.lock !== 'held',
    info,
    lockMode: effectiveMode(info.dir, lockOptions?.mode),
    findings: [],
  }
  if (info.lock === 'held') {
    d.findings.push(
      owner
        ? `In use by process ${owner.pid} on ${owner.hostname} (${owner.command}) since ${owner.acquiredAt}${
            owner.alive === false ? ', which is no longer running' : owner.alive === undefined ? ' (another host)' : ''
          }. Stop that process, or wait for it to close, to open the directory here.`
        : 'In use by another process that left no owner record yet.',
    )
  } else if (info.lock === 'held-by-this-process') {
    d.findings.push('Open in this process.')
  } else if (owner) {
    d.findings.push(
      `Free: it can be opened now. The last holder, process ${owner.pid} on ${owner.hostname}, ended without closing (a crash or a kill); everything it committed is kept.`,
    )
  } else {
    d.findings.push('Free: it can be opened now.')
  }
  if (d.lockMode === 'heartbeat') {
    d.findings.push('On a network or FUSE file system: the lock is a heartbeat, taken over once stale.')
  }
  readStore(info.dir, engine, d)
  if (info.migrated) d.findings.push(`Its documents were merged into ${info.migrated.into} on ${info.migrated.at}.`)
  return d
}

function readStore(dir: string, engine: AnyEngine, d: Diagnosis): void {
  const store = engine.describeStore?.(dir)
  if (!store) return
  if (store.empty) {
    d.findings.push('No store file yet (the directory was locked but never written).')
    return
  }
  if (store.version !== undefined) d.storeVersion = store.version
  if (store.siteId !== undefined) d.siteId = store.siteId
  if (store.heldBy && d.status !== 'held' && d.status !== 'held-by-this-process') {
    const h = store.heldBy
    d.ok = false
    d.status = 'held'
    d.findings.unshift(
      `In use by process ${h.pid} on ${h.hostname} (${h.command}), which holds the store's own lock. Stop that process to open the directory here.`,
    )
  }
  if (store.problem !== undefined) {
    d.ok = false
    d.status = 'unreadable'
    d.findings.push(store.problem)
  }
}
