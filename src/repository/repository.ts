import type { JsonValue } from '../mesh/document.js'
import type { LongTransaction } from './lock-hold.js'

/** A value of a repository row, as adapters see it. */
export type RowValue = JsonValue

/** One record of a model, keyed by column (or property) name. */
export type Row = { [column: string]: RowValue }

/** Who made a change: the application (`local`) or the mesh (`remote`). */
export type ChangeOrigin = 'local' | 'remote'

/** A write to a mirrored model recorded by change capture (the outbox), not yet sent to the mesh. */
export interface CapturedChange {
  /** Position in the outbox; increases with every captured write. */
  seq: number
  model: string
  /** The row's document id (see {@link Repository.rowId}). */
  id: string
  /** What the write did. The bridge reads the row's current state either way. */
  op: 'upsert' | 'delete'
  /** When it was captured (ms since the epoch). */
  at: number
  /**
   * For an update or a delete: the row as it was before (null for an insert,
   * and for the new id of an update that changed the primary key).
   */
  old: Row | null
}

/** The content last exchanged with the mesh for one document. */
export interface DocSyncState {
  /** Content hash of the document, or {@link DELETED_HASH} after a removal. */
  hash: string
  /** Whether that content came from the mesh or was sent to it. */
  origin: ChangeOrigin
  /** The document as canonical JSON, or null after a removal. The base for sending only changed fields. */
  doc: string | null
}

/** Sync state written for a document id. */
export interface DocSyncStateEntry extends DocSyncState {
  id: string
}

/** The hash recorded for a removed document. */
export const DELETED_HASH = '-'

export interface TransactionOptions {
  /**
   * `remote` marks a write applied from the mesh: change capture ignores it,
   * so it is never sent back (loop prevention). Default `local`.
   */
  origin?: ChangeOrigin
  /** Stops waiting for a busy database (the transaction then fails with `ABORTED`). */
  signal?: AbortSignal
}

/** Reads and writes inside {@link Repository.transaction}. */
export interface RepositoryTx {
  get(model: string, id: string): Promise<Row | undefined>
  /** Inserts or updates rows by primary key. Returns how many rows actually changed. */
  upsert(model: string, rows: readonly Row[]): Promise<number>
  /** Deletes rows by id. Returns how many existed. */
  delete(model: string, ids: readonly string[]): Promise<number>
  /** The ids among `ids` with captured changes not yet acknowledged (local edits not yet in the mesh). */
  pendingIds(model: string, ids: readonly string[]): Promise<Set<string>>
  putSyncStates(model: string, entries: readonly DocSyncStateEntry[]): Promise<void>
  /** Stores (or, with null, clears) a named checkpoint such as a mesh cursor. */
  setCheckpoint(key: string, value: string | null): Promise<void>
  /** Forgets all sync state and checkpoints (the mesh was replaced by a new, empty one). Captured changes stay. */
  clearSyncState(): Promise<void>
  /** Removes captured changes of `models` up to and including `upTo`. Returns how many. */
  acknowledge(upTo: number, models: readonly string[]): Promise<number>
  /** Runs `fn` so that its writes are undone if it throws, without failing the transaction. */
  savepoint<T>(fn: () => Promise<T>): Promise<T>
  /** Keeps documents as parked or refused (replacing an earlier entry of the same id, counting the attempt). */
  park(model: string, entries: readonly ParkEntry[]): Promise<void>
  /** Forgets parked or refused entries (the documents were applied). */
  unpark(model: string, ids: readonly string[]): Promise<void>
}

/**
 * A received document that is not in the database: `parked` waits for a
 * parent row (it is applied as soon as the parent lands); `refused` was
 * refused by the database or the adapter (a constraint, a column the table
 * lacks, a malformed document) and is retried at the next start.
 */
export interface ParkedDocument {
  model: string
  id: string
  state: 'parked' | 'refused'
  /** What the document asked for. */
  op: 'upsert' | 'delete'
  /** Why it is not applied, in words. */
  reason: string
  /** A stable code for the reason (`SQLITE_CONSTRAINT_NOTNULL`, `DOCUMENT_REJECTED`…), when there is one. */
  code: string | null
  /** The parent a parked row waits for: `table(column, …)` and the key's values (JSON). */
  waitsFor: string | null
  waitsKey: string | null
  /** How many times it was tried. */
  attempts: number
  /** When it was first kept, and last tried (ms since the epoch). */
  since: number
  updatedAt: number
}

/** A document to keep as parked or refused (see {@link ParkedDocument}). */
export type ParkEntry = Pick<ParkedDocument, 'id' | 'state' | 'op' | 'reason'> &
  Partial<Pick<ParkedDocument, 'code' | 'waitsFor' | 'waitsKey'>>

/** One received change to write. */
export interface RemoteWrite {
  id: string
  /** The record to upsert, or null to delete. */
  row: Row | null
  /** Set when the document was refused before it reached the database: it is kept as refused, nothing is written. */
  refused?: { reason: string; code?: string }
  /** Sync state recorded when written. */
  hash: string
  doc: string | null
}

/**
 * Received changes written in one transaction as a remote apply, described
 * as data so that a repository can run it in one go (without yielding while
 * it holds the write lock) and retry it as a whole.
 */
export interface RemoteBatch {
  groups: {
    model: string
    writes: RemoteWrite[]
    /** Ids to hold back besides those with captured changes (local writes being sent). */
    hold: string[]
  }[]
  checkpoints: { key: string; value: string }[]
  /** Report for every write whether it changed its row (slower: one statement per row). */
  exact?: boolean
}

/** What happened to a write (see {@link WriteOutcome}). */
export const Outcome = {
  /** Written (with `exact`: the row already held it). */
  written: 0,
  /** Written and the row changed (only reported with `exact`). */
  changed: 1,
  /** Held back: the row has local changes not yet sent. */
  held: 2,
  /** Refused: kept as refused, with its reason. */
  refused: 3,
  /** Parked: its parent row is not there yet; applied when it lands. */
  parked: 4,
} as const

export type WriteOutcome = (typeof Outcome)[keyof typeof Outcome]

export interface RemoteBatchResult {
  groups: {
    /** Rows that changed. */
    changed: number
    /** Per write, in order. */
    outcomes: WriteOutcome[]
  }[]
  /** Why writes were refused or parked, by group index and write index. */
  errors: { group: number; write: number; message: string; code?: string }[]
  /** How long the batch held the write lock, ms, every attempt counted (repositories that time it). */
  heldMs?: number
  /**
   * Parked documents whose parent this batch wrote, by model: apply them
   * again (read them from the mesh) now.
   */
  unblocked: Map<string, string[]>
}
/**
 * How a SQLite repository finds the app's writes right now (`stats().changeDetection`,
 * and a running peer's status).
 */
export interface ChangeDetection {
  /**
   * `watch`: file notifications on the database's directory wake the check
   * at once, with a poll as a safety net; `poll`: the poll alone finds them;
   * `off`: nothing is looking (no one is listening for changes yet).
   */
  mode: 'watch' | 'poll' | 'off'
  /** The poll's period, ms (a safety net's while watching). */
  pollMs: number
  /**
   * Why the poll alone finds the writes: `disabled` (`watchFile: false`, config
   * `watchDatabase: false`), `no-file` (a database in memory, or no file at the
   * path), `watch-unavailable` (the directory could not be watched, or its
   * watch failed: see `error`), `notifications-missed` (commits arrived that
   * no notification announced: a file system that delivers none, such as some
   * network file systems).
   */
  reason?: 'disabled' | 'no-file' | 'watch-unavailable' | 'notifications-missed'
  /** The file system's error for `watch-unavailable`, e.g. `ENOSPC` when no inotify watches are left. */
  error?: string
}

/** Counters a repository keeps. */
export interface RepositoryStats {
  /** Transactions committed. */
  transactions: number
  /** Times a write waited for another writer (SQLITE_BUSY) and was retried. */
  busyRetries: number
  /** Transactions that held the write lock for `longTransactionMs` or more (repositories that time it: SQLite). */
  longTransactions?: number
  /** The longest any transaction held the write lock, ms. */
  longestHoldMs?: number
  /**
   * Times a transaction waited to leave the write lock free for a moment,
   * after transactions held it most of the last second (SQLite: so that an
   * app waiting on its busy timeout gets in).
   */
  lockPauses?: number
  /** WAL checkpoints run by the repository's worker thread (SQLite with `checkpoints: 'background'`). */
  backgroundCheckpoints?: number
  /** How the app's writes are found (SQLite): file notifications or polling, and why polling. */
  changeDetection?: ChangeDetection
}

/** Events a repository emits. */
export interface RepositoryEvents {
  /** Another writer holds the database; the transaction will be retried after `waitMs`. */
  busy: { attempt: number; waitMs: number; error: unknown }
  /**
   * A transaction held the write lock for `longTransactionMs` or more, so
   * the app's writes waited that long (repositories that time it: SQLite).
   */
  longTransaction: LongTransaction
}

/**
 * The application's own data store, as the sync bridge sees it: rows of
 * named models, a change log of local writes (the outbox), and the sync state
 * kept next to the data so both commit together.
 *
 * `openSqliteRepository` implements it on a SQLite file with trigger-based
 * change capture; other databases or ORMs implement the same port (without
 * capture, the app calls `coordinator.notifyLocalUpsert` instead).
 *
 * @example
 * ```ts
 * await using repo = await openSqliteRepository({
 *   file: './pos.db',
 *   models: [{ name: 'counters', primaryKey: 'id' }],
 * })
 * await repo.transaction(async (tx) => { await tx.upsert('counters', [{ id: 'c1', cur_rcpt_no: 8 }]) })
 * const row = await repo.get('counters', 'c1')
 * ```
 */
export interface Repository extends AsyncDisposable {
  /** Where the data lives (a file path), for messages. */
  readonly location: string
  /** True when local writes are captured into the outbox by the repository itself (triggers). */
  readonly capturesChanges: boolean

  /** Names of the models this repository holds, parents before children (foreign keys). */
  models(): string[]
  /** The primary-key columns of a model, in key order (one for a single-column key). */
  keyColumns(model: string): string[]
  /**
   * The document id of a row: a single-column key's value as a string, or
   * the JSON array of a composite key's values (`[3,"2024-01-05"]`).
   */
  rowId(model: string, row: Row): string

  get(model: string, id: string): Promise<Row | undefined>
  getMany(model: string, ids: readonly string[]): Promise<Map<string, Row>>
  /** Rows in primary-key order, after the id `after` (exclusive), at most `limit`. */
  scan(model: string, options: { after?: string | null; limit: number }): Promise<Row[]>
  count(model: string): Promise<number>

  /** Writes rows as the application would (captured, then sent to the mesh). */
  upsert(model: string, rows: readonly Row[]): Promise<number>
  /** Deletes rows as the application would. */
  delete(model: string, ids: readonly string[]): Promise<number>

  /**
   * Runs `fn` in one write transaction. A database held by another writer is
   * waited for and retried with backoff, which may run `fn` again: keep it
   * free of side effects outside the transaction.
   */
  transaction<T>(fn: (tx: RepositoryTx) => Promise<T>, options?: TransactionOptions): Promise<T>

  /**
   * Optional fast path: writes received changes described as data, in one
   * transaction marked as a remote apply, holding back rows with captured
   * changes not yet sent, and recording their sync state and the
   * checkpoints. The bridge uses it for
   * adapters without their own `upsertToRepository`/`deleteFromRepository`.
   */
  applyRemoteBatch?(batch: RemoteBatch, options?: { signal?: AbortSignal }): Promise<RemoteBatchResult>

  /** Starts (or stops) capturing a model's writes into the outbox. Idempotent. */
  setChangeCapture(model: string, enabled: boolean): Promise<void>
  /** Captured changes of `models`, oldest first. */
  pendingChanges(options: { models: readonly string[]; limit: number }): Promise<CapturedChange[]>
  /**
   * Optional, for repositories that capture changes: the rows of `ids` as
   * they were right after captured change `seq`, read at one moment. A row
   * changed again since has a later captured change, and is returned as it
   * was before that change (absent when it did not exist then); other rows
   * as they are. Sending these, rather than the rows as they are now, keeps
   * what is sent exactly what the changes up to `seq` did: a change after
   * `seq` is sent once, with its own entry, even when it moves a counter.
   * With `seq` 0: the rows as they were before every change not yet acknowledged.
   */
  rowsAt?(model: string, ids: readonly string[], seq: number): Promise<Map<string, Row>>
  /** How many captured changes of `models` wait, and the capture time of the oldest. */
  pendingChangeCount(models: readonly string[]): Promise<{ count: number; oldestAt: number | null }>
  /** Calls `listener` when new changes may have been captured (from any connection or process). */
  onChanges(listener: () => void): () => void

  /** Sync state of documents. With `documents: false`, `doc` is left null (cheaper). */
  syncStates(
    model: string,
    ids: readonly string[],
    options?: { documents?: boolean },
  ): Promise<Map<string, DocSyncState>>
  /**
   * Every document's hash and origin for a model (documents left null), or
   * undefined when there are more than `limit`: lets the bridge keep them in
   * memory instead of looking each one up.
   */
  allSyncStates(model: string, limit: number): Promise<Map<string, DocSyncState> | undefined>
  /**
   * Optional: up to `limit` of a model's sync states (documents left null),
   * in id order, from the first id after `after` (from the start when null):
   * lets a reader go through every state of a model in bounded memory.
   */
  syncStatePage?(model: string, options: { after: string | null; limit: number }): Promise<DocSyncStateEntry[]>
  /** Rows with no sync state (never sent to nor received from the mesh), in primary-key order. */
  unmirrored(model: string, options: { after?: string | null; limit: number }): Promise<Row[]>
  countUnmirrored(model: string): Promise<number>
  checkpoint(key: string): Promise<string | undefined>

  /** Documents kept as parked or refused, oldest first (see {@link ParkedDocument}). */
  parked(options: { model?: string; state?: ParkedDocument['state']; limit: number }): Promise<ParkedDocument[]>
  /** How many documents are parked and refused. */
  parkedCounts(): Promise<{ parked: number; refused: number }>
  /**
   * Optional: the parked documents waiting for a parent among `rows` (rows
   * of `model` the app just wrote), and the parked removals waiting for
   * `removed` (rows of `model` the app just deleted, as they were before) to
   * go, by model. The bridge applies them again.
   */
  unblockedBy?(model: string, rows: readonly Row[], removed?: readonly Row[]): Promise<Map<string, string[]>>

  stats(): RepositoryStats
  on<E extends keyof RepositoryEvents>(event: E, listener: (payload: RepositoryEvents[E]) => void): () => void

  /** Closes the repository after running transactions finish. Idempotent. */
  close(): Promise<void>
}
