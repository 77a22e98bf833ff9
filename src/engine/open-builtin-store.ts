import { join, resolve } from 'node:path'
import { ErrorCode, ValidationError } from '../errors.js'
import { silentLogger } from '../logger.js'
import { assertCollection, DEFAULT_MAX_DOC_BYTES } from '../mesh/validate.js'
import { WalCheckpointer } from '../util/wal-checkpointer.js'
import { BuiltinMeshStore } from './builtin-mesh.js'
import { ConflictLog } from './conflict-log.js'
import { openDatabases, readMeta, STORE_FILE, writeMeta } from './database.js'
import { HybridClock, isClock } from './hlc.js'
import { ObserverHub } from './observers.js'
import { runQuery } from './reads.js'
import { newSiteId, toSiteId } from './site-id.js'
import { prepareStatements, type StoreCore } from './store-core.js'
import type { BuiltinMesh, OpenMeshOptions, SiteId, VersionVector } from './types.js'

const DEFAULT_MAX_DRIFT_MS = 60_000

/**
 * Opens (creating if needed) a builtin mesh store in a persistence directory.
 *
 * This opens the store directly; applications that may start twice (hot
 * reload) or run several processes should open it through the instance
 * manager, which adds the directory lock.
 *
 * @example
 * ```ts
 * await using mesh = await openBuiltinStore({ dir: './pos-mesh' })
 * await mesh.upsert('counters', [{ _id: 1, branchId: 1, curRcptNo: 0 }])
 * ```
 */
export async function openBuiltinStore(options: OpenMeshOptions): Promise<BuiltinMesh> {
  const opts = checkOptions(options)
  const dir = resolve(opts.dir)
  const { writer, reader } = openDatabases(dir, opts.synchronous ?? 'normal')
  try {
    let site = readMeta(writer, 'site_id') as SiteId | undefined
    if (site === undefined) {
      site = opts.siteId === undefined ? newSiteId() : toSiteId(opts.siteId)
      writeMeta(writer, 'site_id', site)
      writeMeta(writer, 'created_at', new Date().toISOString())
    } else if (opts.siteId !== undefined && opts.siteId !== site) {
      throw new ValidationError(
        ErrorCode.INVALID_OPTIONS,
        `The mesh directory ${dir} belongs to site ${site}, not ${opts.siteId}. Omit siteId, or use another directory.`,
        { details: { dir, site, requested: opts.siteId } },
      )
    }
    const lastClock = readMeta(writer, 'clock')
    const clock = new HybridClock(
      { site, now: opts.now ?? Date.now, maxDriftMs: opts.maxClockDriftMs ?? DEFAULT_MAX_DRIFT_MS },
      lastClock !== undefined && isClock(lastClock) ? lastClock : undefined,
    )
    const seq = (writer.prepare('SELECT coalesce(max(seq), 0) FROM docs').pluck().get() as number) ?? 0
    const vv: VersionVector = {}
    for (const row of writer.prepare('SELECT site, seq FROM versions').all() as { site: string; seq: number }[]) {
      vv[row.site] = row.seq
    }
    const logger = opts.logger ?? silentLogger
    let store: BuiltinMeshStore | undefined
    const observers = new ObserverHub({
      runQuery: (q) => runQuery(reader, q),
      onError: (error, query) => store?.reportObserverError(error, query),
    })
    const core: StoreCore = {
      site,
      dir,
      writer,
      reader,
      w: prepareStatements(writer),
      r: prepareStatements(reader),
      clock,
      observers,
      logger,
      maxDocumentBytes: opts.maxDocumentBytes ?? DEFAULT_MAX_DOC_BYTES,
      conflictLog: new ConflictLog(writer),
      checkpointer:
        opts.checkpoints === 'inline'
          ? undefined
          : new WalCheckpointer({ file: join(dir, STORE_FILE), writer, logger }),
      recordConflicts: new Set(opts.recordConflicts ?? []),
      now: opts.now ?? Date.now,
      seq,
      committedSeq: seq,
      vv,
      remoteApplied: 0,
    }
    store = new BuiltinMeshStore(core)
    logger.debug('mesh store opened', { dir, site, sequence: seq })
    return store
  } catch (e) {
    reader.close()
    writer.close()
    throw e
  }
}

function checkOptions(options: OpenMeshOptions): OpenMeshOptions {
  // Named after the public openMesh, the call applications make that lands here.
  const bad = (message: string) => new ValidationError(ErrorCode.INVALID_OPTIONS, `openMesh: ${message}`)
  if (typeof options !== 'object' || options === null) throw bad('options must be an object with a dir.')
  if (typeof options.dir !== 'string' || options.dir.length === 0) throw bad('dir must be a non-empty path.')
  const { maxDocumentBytes, maxClockDriftMs, synchronous, checkpoints } = options
  if (maxDocumentBytes !== undefined && (!Number.isSafeInteger(maxDocumentBytes) || maxDocumentBytes < 64)) {
    throw bad('maxDocumentBytes must be an integer of at least 64.')
  }
  if (maxClockDriftMs !== undefined && (!Number.isFinite(maxClockDriftMs) || maxClockDriftMs < 0)) {
    throw bad('maxClockDriftMs must be a non-negative number.')
  }
  if (synchronous !== undefined && !['off', 'normal', 'full'].includes(synchronous)) {
    throw bad("synchronous must be 'off', 'normal' or 'full'.")
  }
  if (checkpoints !== undefined && !['background', 'inline'].includes(checkpoints)) {
    throw bad("checkpoints must be 'background' or 'inline'.")
  }
  if (options.siteId !== undefined) toSiteId(options.siteId)
  const record = options.recordConflicts
  if (record !== undefined) {
    if (!Array.isArray(record)) throw bad('recordConflicts must be a list of collection names.')
    for (const c of record) {
      try {
        assertCollection(c)
      } catch (e) {
        throw bad(`recordConflicts: ${(e as Error).message}`)
      }
    }
  }
  return options
}
