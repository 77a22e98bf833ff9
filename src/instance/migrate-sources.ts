import { existsSync, realpathSync, statSync } from 'node:fs'
import { resolve } from 'node:path'
import { ErrorCode, StorageError, ValidationError } from '../errors.js'
import type { Logger } from '../logger.js'
import { DirectoryLock, type LockOptions } from './lock.js'
import type { MeshEngine, MigrationProgress } from './mesh-engine.js'
import { markMigrated, readMigrated } from './migrated-marker.js'
import { heldByThisProcess } from './open-instances.js'
import { readOwner } from './owner.js'
import type { MigrationReport } from './types.js'
import { uniqueSiblings } from './unique-dir.js'

/**
 * The source directories of a migration, checked before anything is opened
 * or created: each named one must exist and hold a store of `engine`.
 */
export function resolveSources(
  migrateFrom: readonly string[] | 'unique-siblings',
  dir: string,
  engine: MeshEngine<{ close(): Promise<void> }>,
): string[] {
  if (!engine.migrate) {
    throw new ValidationError(ErrorCode.INVALID_OPTIONS, `The ${engine.name} engine cannot migrate; omit migrateFrom.`)
  }
  if (migrateFrom === 'unique-siblings') return uniqueSiblings(resolve(dir)).filter((d) => engine.isMeshDir(d))
  return migrateFrom.map((d) => {
    const abs = resolve(d)
    if (!existsSync(abs)) {
      throw new StorageError(ErrorCode.DIRECTORY_UNUSABLE, `Cannot migrate from ${abs}: it does not exist.`, {
        details: { dir: abs },
      })
    }
    if (!statSync(abs).isDirectory()) {
      throw new StorageError(ErrorCode.DIRECTORY_UNUSABLE, `Cannot migrate from ${abs}: it is not a directory.`, {
        details: { dir: abs },
      })
    }
    if (!engine.isMeshDir(abs)) {
      throw new StorageError(
        ErrorCode.STORE_INCOMPATIBLE,
        `Cannot migrate from ${abs}: it holds no ${engine.name} mesh store. Remove it from migrateFrom.`,
        { details: { dir: abs } },
      )
    }
    return realpathSync(abs)
  })
}

/**
 * Merges each source into `target` once. A source is locked while it is
 * read, so one in use elsewhere is skipped (and retried on a later open); a
 * finished one gets a marker and is skipped from then on.
 */
export async function migrateSources<S extends { close(): Promise<void> }>(
  engine: MeshEngine<S>,
  target: S,
  targetDir: string,
  sources: readonly string[],
  options: { lock?: LockOptions; onProgress?: (p: MigrationProgress) => void; logger: Logger },
): Promise<MigrationReport> {
  const report: MigrationReport = { migrated: [], skipped: [], failed: [] }
  for (const source of sources) {
    if (source === targetDir) continue
    const marker = readMigrated(source)
    if (marker) {
      report.skipped.push({ source, reason: 'already-migrated', detail: `merged into ${marker.into} on ${marker.at}` })
      continue
    }
    if (heldByThisProcess(source)) {
      report.skipped.push({ source, reason: 'open-in-this-process', detail: 'it is open in this process' })
      continue
    }
    let lock: DirectoryLock | undefined
    try {
      lock = DirectoryLock.tryAcquire(source, options.lock)
      if (!lock) {
        const holder = readOwner(source)
        report.skipped.push({
          source,
          reason: 'in-use',
          detail: holder ? `in use by process ${holder.pid} on ${holder.hostname}` : 'in use by another process',
        })
        continue
      }
      const r = await engine.migrate!(source, target, {
        chunkSize: 1000,
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      })
      markMigrated(source, { into: targetDir, at: new Date().toISOString(), documents: r.documents })
      report.migrated.push({ source, ...r })
      options.logger.info('migrated an old mesh directory', { source, into: targetDir, documents: r.documents })
    } catch (error) {
      const message = (error as Error).message
      report.failed.push({ source, error: message })
      options.logger.error('migration of an old mesh directory failed; it will be retried on the next open', {
        source,
        error: message,
      })
    } finally {
      lock?.release()
    }
  }
  return report
}
