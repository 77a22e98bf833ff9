import type { Logger } from '../logger.js'
import type { ConflictQuery, ConflictRecord } from '../mesh/conflict.js'
import type { JsonObject, JsonValue } from '../mesh/document.js'
import type { MeshStore, MeshStoreStats } from '../mesh/mesh-store.js'

/** A replica's identity: 1-64 characters from `[A-Za-z0-9_-]`. */
export type SiteId = string & { readonly __brand: 'SiteId' }

/**
 * What a replica has seen of each site's own writes: site id → the highest
 * sequence number of that site's writes it holds (and every earlier one).
 */
export type VersionVector = Record<string, number>

/**
 * One counter field's per-site increments: site → `[epoch, total, clock]`.
 * `total` is the sum of that site's increments made on top of the counter's
 * value as set at `epoch` (the clock of the last reset: a set or a removal).
 */
export type CounterEntries = Record<string, [epoch: string, total: number, clock: string]>

/**
 * A document's merge metadata. Clocks are hybrid logical clock strings,
 * ordered as strings; `t` holds the distinct clocks the rest refers to by index.
 */
export interface DocMeta {
  /** Distinct clocks used by this document. */
  t: string[]
  /** Index in `t` of the latest write of any kind (the document exists when it is newer than `d`). */
  i: number
  /** Index in `t` of the latest removal, when removed at least once. */
  d?: number
  /**
   * Index in `t` of the latest write that created the document (first, or
   * again after a removal); absent when it is `i`. The document exists while
   * this is newer than `d`.
   */
  c?: number
  /**
   * A removed document's field values that a later creation can bring back
   * (fields written after the removal, concurrently with it): kept here,
   * since a removed document has no content.
   */
  h?: Record<string, JsonValue>
  /**
   * Field → index in `t` of the field's last set. A field in `f` but not in
   * the document is unset; a plain (non-counter) field of the document that
   * is not in `f` was set at `t[0]`.
   */
  f: Record<string, number>
  /** Counter fields: base value set at the field's clock (absent: 0) and per-site increments. */
  n?: Record<string, { b?: JsonValue; s: CounterEntries }>
  /** Origin site → sequence number of that site's latest write to this document. */
  v: Record<string, number>
  /**
   * For a creation after a removal: `v` as the creating write saw it. Absent
   * for a first creation. Two creations where neither saw the other are a
   * create/create collision.
   */
  cx?: Record<string, number>
  /**
   * Field → index in `t` of the value the field's last set replaced on its
   * writer, or -1 when it replaced none. Kept for collections that record
   * conflicts; absent where not known.
   */
  p?: Record<string, number>
  /**
   * Concurrent creations that lost to a later one: `[winner clock, loser
   * clock, winner content, loser content]`, so every replica learns of them.
   */
  x?: [winner: string, loser: string, winnerContent: JsonObject, loserContent: JsonObject][]
}

/**
 * A document's full replicated state, as exchanged between replicas:
 * `doc` is the visible document (null when removed) and `meta` how it merges.
 */
export interface RemoteChange {
  collection: string
  id: string
  doc: JsonObject | null
  meta: DocMeta
}

/** Where a chunk of changes comes from, committed atomically with the chunk. */
export interface ApplyRemoteOptions {
  /** The sending replica: its cursor is recorded for resuming. */
  from?: string
  /** The sender's change sequence this chunk brings the receiver up to. */
  cursor?: number
  /** The sender's version vector at `cursor`, when the chunk completes a catch-up. Merged into ours. */
  versionVector?: VersionVector
}

export interface ApplyRemoteResult {
  /** Documents whose state changed. */
  applied: number
  /** Documents already up to date (re-delivery). */
  unchanged: number
  /**
   * Of `applied`, the documents now stored exactly as the change carried
   * them: it held every write the local state held. When all are, this
   * call's changes say nothing the sender lacks.
   */
  asReceived: number
  /** The change sequence numbers this call gave its changes: after `after`, up to `upTo` (equal when it changed nothing). */
  sequences: { after: number; upTo: number }
}

/** A chunk of this replica's changes a peer has not seen. */
export interface ChangeChunk {
  changes: RemoteChange[]
  /** Our change sequence the chunk reaches: pass it back as `after` for the next chunk. */
  cursor: number
  /** True when the chunk reaches our latest change. */
  complete: boolean
  /** Our version vector, present when `complete` (consistent with the chunk). */
  versionVector?: VersionVector
}

/**
 * A `ChangeChunk` whose changes are JSON texts, ready to be put in a frame
 * (see `encodedChanges`). Internal to the engine and replication.
 */
export interface EncodedChunk extends Omit<ChangeChunk, 'changes'> {
  /** Each change as the JSON text of its `RemoteChange`. */
  changes: string[]
}

/** Counters of the builtin engine. */
export interface BuiltinMeshStats extends MeshStoreStats {
  /** Our latest change sequence. */
  sequence: number
  /** Remote changes whose clock was beyond `maxClockDriftMs` ahead of ours. */
  clockDriftExceeded: number
  /** Remote changes merged. */
  remoteApplied: number
  /** Size of the database files, in bytes. */
  diskBytes: number
  /** WAL checkpoints run off the event loop, by the store's worker thread (see `checkpoints`). */
  backgroundCheckpoints: number
}

export interface OpenMeshOptions {
  /** Persistence directory; created if missing. One SQLite database (WAL) lives in it. */
  dir: string
  /** Site id to use. Generated once and persisted when omitted; must match the persisted one otherwise. */
  siteId?: string
  /** Largest accepted document, JSON-encoded, in bytes. Default 1 MiB. */
  maxDocumentBytes?: number
  /** How far ahead of our wall clock a remote clock may drag ours. Default 60,000 ms. */
  maxClockDriftMs?: number
  /**
   * SQLite durability. `normal` (default) survives a process crash (SIGKILL)
   * with every committed write; `full` also survives power loss at some
   * write-speed cost; `off` is for throwaway stores.
   */
  synchronous?: 'off' | 'normal' | 'full'
  /**
   * Where the WAL is copied into the database file (a checkpoint, every
   * 1000 pages written). `background` (default): in a worker thread with its
   * own connection, started once the WAL holds 250 pages (a store that
   * writes little never starts one), so no write waits for it; the writer's own
   * automatic checkpoint is raised to 4,000 pages as a backstop, and comes
   * back to 1000 (with a warning logged) if the worker cannot run.
   * `inline`: SQLite's default, the commit that takes the WAL past 1000
   * pages does it, and the process waits for it (about 9 ms).
   */
  checkpoints?: 'background' | 'inline'
  /**
   * Collections whose concurrent field updates that lose (last writer wins)
   * are recorded as conflicts, for tables where that matters (prices, stock
   * corrections). Create/create collisions are recorded in every
   * collection. Give the same list on every device: a write records what it
   * replaced only where its collection is listed.
   */
  recordConflicts?: readonly string[]
  /** Time source, for tests. Default `Date.now`. */
  now?: () => number
  /** Receives diagnostics. Default: silent. */
  logger?: Logger
}

/**
 * The builtin engine: a {@link MeshStore} on one SQLite database, plus the
 * hooks replication uses to exchange exactly the changes a peer has not seen.
 */
export interface BuiltinMesh extends MeshStore {
  readonly siteId: SiteId
  /** Absolute path of the persistence directory. */
  readonly dir: string

  /** What this replica has seen of each site's writes. */
  versionVector(): Promise<VersionVector>

  /**
   * Our changes after `after` (our change sequence; 0 for all) that a peer
   * with `peerVersionVector` has not seen, at most `limit` of them, in change
   * order. Resumable: pass the returned `cursor` back as `after`.
   */
  changesFor(peerVersionVector: VersionVector, after: number, limit: number): Promise<ChangeChunk>

  /**
   * Merges changes from another replica in one transaction: idempotent,
   * commutative, all-or-nothing. Invalid changes throw `INVALID_CHANGE` and
   * nothing is applied.
   */
  applyRemote(changes: readonly RemoteChange[], options?: ApplyRemoteOptions): Promise<ApplyRemoteResult>

  /** The cursor recorded by `applyRemote` for a sending replica (0 when none). */
  peerCursor(from: string): Promise<number>

  /** Subscribes to every committed change (local or remote), in commit order, for replication's live push. */
  onCommit(listener: (sequence: number) => void): () => void

  /** Names of the collections that hold documents or tombstones. */
  collections(): Promise<string[]>

  stats(): Promise<BuiltinMeshStats>

  conflicts(query?: ConflictQuery): Promise<ConflictRecord[]>
  conflictCount(query?: Pick<ConflictQuery, 'collection'>): Promise<number>
}
