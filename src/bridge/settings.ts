import { ErrorCode, ValidationError } from '../errors.js'

/**
 * Tuning of the sync bridge. The defaults are meshmirror's policy; the seed's
 * knobs are here too so that its behaviour can be reproduced and measured
 * (see {@link SEED_SETTINGS}).
 */
export interface SyncSettings {
  /** Most rows written to the repository in one transaction. Default 1,000 (seed: 5). */
  batchSize?: number
  /**
   * How long one apply transaction should hold the write lock: batches take
   * as many changes as fit in it at the slowest time per change seen lately
   * (down to 16 rows; a slow batch is remembered for tens of batches, and
   * batches grow back at most doubling, up to `batchSize`; the first takes
   * 64 at most), so that the application never waits for the write lock
   * much longer. Default 250 ms; 0 keeps batches at `batchSize`.
   */
  targetBatchMs?: number
  /**
   * Longest a received change waits for its batch to fill before it is
   * written, while changes stream in. After this long without a batch
   * written, a change is written at once. Default 2 ms (see
   * docs/performance.md, "The app's database").
   */
  maxBatchDelayMs?: number
  /** Pause after each apply batch. Default 0 (seed: 100 ms). */
  delayBetweenBatches?: number
  /** Write each received row in its own transaction, as the seed did. Default false. */
  transactionPerRow?: boolean
  /**
   * Queued rows above which observers are held back (the mesh coalesces
   * their deliveries meanwhile). Default 4 × batchSize, at least 2,000.
   */
  highWaterMark?: number
  /** Outbox entries sent to the mesh per mesh transaction. Default 500. */
  drainBatchSize?: number
  /** Changes read from the mesh per page. Default 2,000. */
  catchUpPageSize?: number
  /** Rows seeded per chunk. Default 500. */
  seedBatchSize?: number
  /**
   * Skip the startup catch-up and apply only changes made from now on, like
   * the seed's `skipInitialFetch: true`. What it loses: every change made in
   * the mesh while the app was not running (edits, new documents, removals)
   * stays unapplied until that document changes again, or until a later
   * start without this setting catches up. Default false: the catch-up reads
   * only what changed since the last run, so it costs no mass upserts.
   */
  skipInitialFetch?: boolean
  /** Wait before starting sync. Default 0: startup waits for readiness, not for time (seed: 3,000 ms). */
  startupDelayMs?: number
  /** Longest `close()` waits for a busy database before giving up on unwritten changes. Default 10,000 ms. */
  closeTimeoutMs?: number
  /**
   * When the mesh's change feed is checked for changes that no observer
   * delivery announced (a document changed and changed back between two
   * deliveries reports no difference): this long after a commit on a mesh
   * that announces its commits (the builtin engine), so an idle bridge does
   * nothing; at this interval on one that does not (Ditto). Default 50 ms.
   */
  pollIntervalMs?: number
  /**
   * How often, while live, every received document's exchanged state is
   * compared with the mesh, and any found out of step applied again (see
   * `SyncCoordinator.verify`). Default 900,000 ms (15 minutes); 0 turns it off.
   */
  verifyIntervalMs?: number
}

/** Settings with every default filled in. */
export type ResolvedSettings = Required<SyncSettings>

/**
 * The seed's policy: batches of 5 written row by row, 100 ms apart, a 3 s
 * startup delay, and no startup catch-up. For comparisons, not for use.
 */
export const SEED_SETTINGS: Readonly<SyncSettings> = Object.freeze({
  batchSize: 5,
  delayBetweenBatches: 100,
  transactionPerRow: true,
  startupDelayMs: 3000,
  skipInitialFetch: true,
})

const POSITIVE_INTEGERS = ['batchSize', 'highWaterMark', 'drainBatchSize', 'catchUpPageSize', 'seedBatchSize'] as const
const NON_NEGATIVE = [
  'maxBatchDelayMs',
  'delayBetweenBatches',
  'startupDelayMs',
  'closeTimeoutMs',
  'pollIntervalMs',
  'verifyIntervalMs',
  'targetBatchMs',
] as const

/** Checks settings and fills in defaults. Throws `INVALID_OPTIONS`. */
export function resolveSettings(settings: SyncSettings = {}): ResolvedSettings {
  const bad = (m: string) => new ValidationError(ErrorCode.INVALID_OPTIONS, `Sync settings: ${m}`)
  if (typeof settings !== 'object' || settings === null) throw bad('settings must be an object.')
  for (const key of POSITIVE_INTEGERS) {
    const v = settings[key]
    if (v !== undefined && !(Number.isSafeInteger(v) && v > 0)) throw bad(`${key} must be a positive integer.`)
  }
  for (const key of NON_NEGATIVE) {
    const v = settings[key]
    if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw bad(`${key} must be a non-negative number.`)
  }
  for (const key of ['transactionPerRow', 'skipInitialFetch'] as const) {
    const v = settings[key]
    if (v !== undefined && typeof v !== 'boolean') throw bad(`${key} must be a boolean.`)
  }
  const batchSize = settings.batchSize ?? 1000
  return {
    batchSize,
    targetBatchMs: settings.targetBatchMs ?? 250,
    maxBatchDelayMs: settings.maxBatchDelayMs ?? 2,
    delayBetweenBatches: settings.delayBetweenBatches ?? 0,
    transactionPerRow: settings.transactionPerRow ?? false,
    highWaterMark: settings.highWaterMark ?? Math.max(2000, 4 * batchSize),
    drainBatchSize: settings.drainBatchSize ?? 500,
    catchUpPageSize: settings.catchUpPageSize ?? 2000,
    seedBatchSize: settings.seedBatchSize ?? 500,
    skipInitialFetch: settings.skipInitialFetch ?? false,
    startupDelayMs: settings.startupDelayMs ?? 0,
    closeTimeoutMs: settings.closeTimeoutMs ?? 10_000,
    pollIntervalMs: settings.pollIntervalMs ?? 50,
    verifyIntervalMs: settings.verifyIntervalMs ?? 900_000,
  }
}
