import type { Logger } from '../logger.js'
import type { MeshStore } from '../mesh/mesh-store.js'
import type { Repository } from '../repository/repository.js'
import type { Emitter } from '../util/emitter.js'
import type { SyncContext } from './adapter.js'
import type { AdapterBinding } from './adapter-binding.js'
import type { ApplyQueue } from './apply-queue.js'
import type { SyncEvents, SyncPhase } from './events.js'
import type { MetricsRecorder } from './metrics.js'
import type { PushOverlap } from './push-overlap.js'
import type { ResolvedSettings } from './settings.js'
import type { StateCache } from './state-cache.js'

/** What the parts of a coordinator share. */
export interface SyncRuntime {
  readonly mesh: MeshStore
  readonly repository: Repository
  readonly settings: ResolvedSettings
  readonly queue: ApplyQueue
  readonly metrics: MetricsRecorder
  readonly events: Emitter<SyncEvents>
  readonly logger: Logger
  /** Adapters by model. */
  readonly bindings: ReadonlyMap<string, AdapterBinding>
  /**
   * Local content being written to the mesh, by document key: its hash.
   * Remote changes of these documents wait (their merged result follows),
   * and their echo is recognised.
   */
  readonly pushes: Map<string, string>
  /** Reads of the mesh that overlap local pushes: their content is read again after the push. */
  readonly overlap: PushOverlap
  /**
   * Whether the sync state keeps each exchanged document, as the base for
   * sending only changed fields. Not needed when the repository captures
   * changes: its outbox records each updated row as it was before.
   */
  readonly keepBaseDocs: boolean
  /** Hash and origin of exchanged documents, kept current after each commit. */
  readonly states: StateCache
  /** Aborted when close() begins: long loops (seeding, catch-up) stop at their next step. */
  readonly stopping: AbortSignal
  /** Aborted when close() runs out of time: waits for a busy database give up. */
  readonly shutdown: AbortSignal
  context(): SyncContext
  /** Counts, logs and emits a failure. */
  fail(phase: SyncPhase, error: unknown, model?: string): void
  /** Applies parked documents again (their parent landed): reads them from the mesh and queues them. */
  retry(model: string, ids: string[]): void
  /** Counts and emits a refused document or record. */
  reject(model: string, id: string, direction: 'remote' | 'local', reason: string, error: unknown): void
}

/** Short reasons under which rejections are counted. */
export const RejectReason = {
  /** The adapter's `fromDocument` threw (malformed document). */
  invalidDocument: 'invalid-document',
  /** The adapter's `fromDocument` or `documentId` failed with an unexpected error (a bug in the adapter?). */
  adapterError: 'adapter-error',
  /** `documentId(fromDocument(doc))` is not the document's `_id`. */
  idMismatch: 'id-mismatch',
  /** The repository refused the record (constraint, unknown column…). */
  repositoryRefused: 'repository-refused',
  /** The adapter's `toDocument` threw for a local record. */
  invalidRecord: 'invalid-record',
  /** The mesh refused the document (not JSON, too large…). */
  meshRefused: 'mesh-refused',
} as const

export type RejectReason = (typeof RejectReason)[keyof typeof RejectReason]

/** The message of an unknown error. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
