import { existsSync, mkdirSync, realpathSync, statSync } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import { ErrorCode, hasCode, type LockHeldError, StorageError, ValidationError } from '../errors.js'
import { silentLogger } from '../logger.js'
import { directoryUnusable } from './fs-errors.js'
import type { MeshEngine } from './mesh-engine.js'
import { resolveSources } from './migrate-sources.js'
import { closeAllInstances, instanceKey, joinInstance, trackInstance } from './open-instances.js'
import { type Placement, SharedInstance } from './shared-instance.js'
import { installSignalHandlers } from './shutdown.js'
import type { ClosableStore, EngineInstance, EngineInstanceOptions } from './types.js'
import { uniqueDirName } from './unique-dir.js'

export { closeAllInstances } from './open-instances.js'

/**
 * Opens (or joins) the instance of `options.engine` for a directory. Later
 * opens of an instance already open in this process join it and their other
 * options are ignored. The package entry's `openMeshInstance` calls this
 * with the builtin engine when none is given.
 */
export async function openEngineInstance<S extends ClosableStore>(
  options: EngineInstanceOptions<S> & { engine: MeshEngine<S> },
): Promise<EngineInstance<S>> {
  const opts = checkOptions(options)
  const engine = opts.engine
  const logger = opts.logger ?? silentLogger
  // Checked before anything is created or locked.
  const sources = opts.migrateFrom === undefined ? undefined : resolveSources(opts.migrateFrom, opts.dir, engine)
  if (opts.handleSignals) installSignalHandlers(closeAllInstances)
  if ((opts.strategy ?? 'shared') === 'unique') return openUnique(engine, opts, sources, undefined)

  const dir = realDir(opts.dir)
  const key = instanceKey(engine.name, dir)
  const place: Placement = { dir, key, strategy: 'shared', named: dir }
  try {
    return await joinInstance(
      key,
      dir,
      () => SharedInstance.open(engine, place, opts, sources),
      (shared) => shared.handle(),
    )
  } catch (error) {
    if (opts.onLocked !== 'unique' || !hasCode(error, ErrorCode.LOCK_HELD)) throw error
    const holder = (error as LockHeldError).holder
    const reason = `${dir} is held by process ${holder?.pid ?? '?'} on ${holder?.hostname ?? '?'}`
    logger.warn(
      `mesh directory in use; falling back to a fresh per-run directory. Documents stored in ${dir} are NOT visible in it until merged back (migrateFrom).`,
      { dir, holder },
    )
    return openUnique(engine, opts, sources, reason)
  }
}

async function openUnique<S extends ClosableStore>(
  engine: MeshEngine<S>,
  opts: EngineInstanceOptions<S>,
  sources: readonly string[] | undefined,
  fallback: string | undefined,
): Promise<EngineInstance<S>> {
  const base = resolve(opts.dir)
  const parent = realDir(dirname(base))
  const dir = join(parent, uniqueDirName(basename(base)))
  try {
    mkdirSync(dir)
  } catch (error) {
    throw directoryUnusable(dir, 'create', error)
  }
  ;(opts.logger ?? silentLogger).warn(
    'opening a fresh per-run mesh directory: documents of earlier runs are not visible in it (merge them with migrateFrom)',
    { dir, ...(fallback ? { because: fallback } : {}) },
  )
  const key = instanceKey(engine.name, dir)
  const place: Placement = { dir, key, strategy: 'unique', named: join(parent, basename(base)) }
  if (fallback) place.fallback = fallback
  const pending = SharedInstance.open(engine, place, { ...opts, onLocked: 'fail' }, sources)
  trackInstance(key, dir, pending)
  return (await pending).handle()
}

/** Resolves (creating if needed) a directory to its absolute real path. */
export function realDir(dir: string): string {
  const abs = resolve(dir)
  try {
    if (existsSync(abs) && !statSync(abs).isDirectory()) {
      throw new StorageError(ErrorCode.DIRECTORY_UNUSABLE, `${abs} is a file, not a directory.`, {
        details: { dir: abs },
      })
    }
    mkdirSync(abs, { recursive: true })
    return realpathSync(abs)
  } catch (error) {
    throw directoryUnusable(abs, 'use', error)
  }
}

function checkOptions<S extends ClosableStore>(
  options: EngineInstanceOptions<S> & { engine: MeshEngine<S> },
): EngineInstanceOptions<S> & { engine: MeshEngine<S> } {
  const bad = (what: string) => new ValidationError(ErrorCode.INVALID_OPTIONS, `openMeshInstance: ${what}.`)
  if (typeof options !== 'object' || options === null) throw bad('options must be an object with a dir')
  const o = options
  if (typeof o.dir !== 'string' || o.dir.length === 0) throw bad('dir must be a non-empty path')
  if (o.strategy !== undefined && o.strategy !== 'shared' && o.strategy !== 'unique') {
    throw bad("strategy must be 'shared' or 'unique'")
  }
  if (o.onLocked !== undefined && !['wait', 'fail', 'unique'].includes(o.onLocked)) {
    throw bad("onLocked must be 'wait', 'fail' or 'unique'")
  }
  if (o.lockTimeoutMs !== undefined && !(o.lockTimeoutMs >= 0)) throw bad('lockTimeoutMs must be a number >= 0')
  if (o.healthIntervalMs !== undefined && !(o.healthIntervalMs >= 0)) {
    throw bad('healthIntervalMs must be a number >= 0')
  }
  const e = o.engine
  if (typeof e?.name !== 'string' || typeof e.open !== 'function' || typeof e.isMeshDir !== 'function') {
    throw bad('engine must have a name, open(dir) and isMeshDir(dir)')
  }
  const lock = o.lock
  if (lock !== undefined) {
    if (lock.mode !== undefined && !['kernel', 'heartbeat', 'auto'].includes(lock.mode)) {
      throw bad("lock.mode must be 'kernel', 'heartbeat' or 'auto'")
    }
    const beat = lock.heartbeatMs ?? 2_000
    if (!(beat > 0)) throw bad('lock.heartbeatMs must be a number > 0')
    if (!((lock.staleMs ?? 15_000) >= 2 * beat)) throw bad('lock.staleMs must be at least twice lock.heartbeatMs')
  }
  const m = o.migrateFrom
  if (m !== undefined && m !== 'unique-siblings' && !(Array.isArray(m) && m.every((s) => typeof s === 'string'))) {
    throw bad("migrateFrom must be an array of paths or 'unique-siblings'")
  }
  const c = o.cleanup
  if (c !== undefined && typeof c !== 'boolean') {
    if (typeof c !== 'object' || c === null) throw bad('cleanup must be a boolean or { olderThanMs, dryRun }')
    if (c.olderThanMs !== undefined && !(c.olderThanMs >= 0)) throw bad('cleanup.olderThanMs must be a number >= 0')
  }
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw bad('signal must be an AbortSignal')
  return options
}
