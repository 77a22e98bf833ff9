import type { JsonValue } from '../mesh/document.js'
import type { FieldHistory } from '../mesh/field-history.js'

/** A mirrored table as the dashboard shows it. */
export interface DashboardTable {
  table: string
  /** The repository model (names the table's entries in the outbox and the kept list). */
  model: string
  collection: string
  keyColumns: string[]
  columns: string[]
  direction: 'bidirectional' | 'sendOnly' | 'receiveOnly'
}

/** One link to another device, as the status snapshot records it. */
export interface DashboardLink {
  site: string | undefined
  remote: string
  direction: string
  state: string
  changesSent: number
  changesReceived: number
  /** How many of our changes the device has not acknowledged yet. */
  lag?: number
  lastError?: string
  /** How the link is protected (`psk`, `certificate`, `insecure`), when the mesh says. */
  security?: string
}

/** What the dashboard reads of the peer's status snapshot (`meshmirror status --json`). */
export interface DashboardSnapshot {
  phase: string
  siteId: string
  meshId: string
  hostname: string
  database: string
  meshDir: string
  startedAt: string
  updatedAt: string
  listen?: { host: string; port: number }
  peers: DashboardLink[]
  collections: Record<string, number>
  tables: Record<string, number>
  sync: {
    applied: number
    pushed: number
    rejected: number
    parked: number
    refused: number
    conflicts?: number
    errors: number
    applyRate: number
    pushRate: number
    lagMs: number
    localLagMs: number
    queueDepth: number
  }
  progress?: { phase: string; model?: string; done: number; total?: number }
  lastError?: string
  /** What deserves attention (unencrypted links, writes found by polling, unindexed foreign keys …), shown above every page. */
  warnings?: string[]
}

/** Per-model counters of the sync bridge since the peer started. */
export interface ModelCounts {
  applied: number
  pushed: number
  rejected: number
  parked: number
}

/** A document that did not make it into the database, or a version that lost a merge. */
export interface Problem {
  kind: 'parked' | 'refused' | 'rejected' | 'conflict'
  table: string | undefined
  collection: string | undefined
  id: string
  reason: string
  code?: string
  /** When it happened, or was first kept (ms since the epoch). */
  at: number
  detail?: JsonValue
}

/** A captured local write of a row not yet sent to the mesh. */
export interface OutboxEntry {
  seq: number
  op: 'upsert' | 'delete'
  at: number
}

/** Everything known about one row: why it holds what it holds. */
export interface RowView {
  table: string
  /** The row's id in the database, and its document's id in the mesh. */
  rowId: string
  docId: string
  row: Record<string, JsonValue> | null
  doc: Record<string, JsonValue> | null
  /** Per field, the write whose value the document holds; null when the mesh keeps no such metadata (Ditto). */
  fields: FieldHistory | null
  outbox: OutboxEntry[]
  /** The row's entry in the kept list (parked or refused), when it has one. */
  kept: Problem | undefined
}

/** A document's latest write, as seen in the mesh's change feed. */
export interface DocChange {
  id: string
  /** The device of the latest write and its time, when the mesh knows them. */
  site?: string
  writtenAt?: string
  /** The fields that write set (when known). */
  fields?: string[]
  removed: boolean
}

/** Events the dashboard relays live. */
export interface DashboardSourceEvents {
  snapshot: DashboardSnapshot
  problem: Problem
}

/**
 * The running peer as the dashboard reads it: read-only, small, and free of
 * the peer's internals. `startPeer` provides one when a dashboard is asked for.
 */
export interface DashboardSource {
  readonly siteId: string
  readonly backend: 'builtin' | 'ditto'
  tables(): DashboardTable[]
  snapshot(): Promise<DashboardSnapshot>
  /** Per model, the bridge's counters (empty before sync starts). */
  modelCounts(): Record<string, ModelCounts>
  on<E extends keyof DashboardSourceEvents>(event: E, listener: (payload: DashboardSourceEvents[E]) => void): () => void
  /** Kept (parked, refused) documents and recorded conflicts, newest first. */
  problems(limit: number): Promise<Problem[]>
  /** Rows of a table whose key, or any column's value, contains `text`. */
  search(table: string, text: string, limit: number): Promise<{ rowId: string; row: Record<string, JsonValue> }[]>
  /** One row by its id in the database. */
  row(table: string, rowId: string): Promise<RowView | undefined>
  /** The mesh's change cursor now, per collection. */
  cursor(): Promise<string>
  /** Documents of a collection changed after `cursor`: their latest write. */
  changes(collection: string, cursor: string, limit: number): Promise<{ changes: DocChange[]; cursor: string }>
}
