import type { LongTransaction } from '../repository/lock-hold.js'
import type { SyncContext } from './adapter.js'
import type { DriftedDocument } from './drift-report.js'

/** Where a failure happened. */
export type SyncPhase = 'catch-up' | 'observe' | 'apply' | 'drain' | 'seed' | 'restore' | 'notify' | 'verify' | 'close'

/** Lifecycle states of a coordinator. */
export type CoordinatorState = 'idle' | 'starting' | 'live' | 'closing' | 'closed'

/** Events the coordinator (and the registry) emit. */
export interface SyncEvents {
  /** A batch of remote changes committed to the repository. */
  applied: {
    rows: number
    applied: number
    unchanged: number
    deferred: number
    rejected: number
    /** Rows parked: their parent row is not there yet. */
    parked: number
    latencyMs: number
    lagMs: number
  }
  /** Local changes written to the mesh (one mesh transaction). */
  pushed: { upserts: number; removals: number; unchanged: number; models: string[] }
  /** A document or record was refused; the rest of its batch went on. */
  rejected: {
    model: string
    id: string
    direction: 'remote' | 'local'
    /** Short, stable category, also the key of `metrics().rejectedByReason`. */
    reason: string
    message: string
    error?: unknown
  }
  /**
   * A remote row was parked: its parent row (by a foreign key) is not in the
   * database yet. It is kept with its reason and applied as soon as the
   * parent lands.
   */
  parked: { model: string; id: string; reason: string }
  /** Another writer holds the database; the apply waits and retries. */
  busy: { attempt: number; waitMs: number }
  /**
   * A transaction of the bridge held the database's write lock for a second
   * or more (the repository's `longTransactionMs`): the app's writes waited
   * as long. Says whether the time went on CPU, on the commit, or on
   * neither (the process was not running: an overloaded machine).
   */
  longTransaction: LongTransaction
  /** Something failed; it is counted and will be retried where that makes sense. */
  error: { phase: SyncPhase; model?: string; error: unknown }
  /**
   * A verification found documents out of step with the mesh (see
   * `SyncCoordinator.verify`): a change that was read and not written. They
   * are applied again from the mesh when `repaired`.
   */
  drift: { documents: DriftedDocument[]; repaired: boolean }
  /** Progress of a long step. `total` is known for seeding and drains. */
  progress: { phase: 'catch-up' | 'drain' | 'seed' | 'restore'; model?: string; done: number; total?: number }
  /** A stored mesh cursor was refused (a re-created mesh): catching up from the start. */
  'cursor-reset': { model: string; error: unknown }
  /** The context changed and scoped observers were re-registered. */
  context: { context: SyncContext; previous: SyncContext; models: string[] }
  state: { state: CoordinatorState }
}

export type SyncEventListener<E extends keyof SyncEvents> = (payload: SyncEvents[E]) => void
