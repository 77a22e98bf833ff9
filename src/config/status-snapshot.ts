import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { HubStatus } from '../hub/hub-link.js'
import type { LinkSecurity } from '../replication/transport.js'
import type { ChangeDetection } from '../repository/repository.js'

/** Name of the status snapshot a running peer keeps in its mesh directory. */
export const STATUS_FILE = 'meshmirror.status.json'

/** Where a peer is in its life. */
export type PeerPhase = 'starting' | 'catching-up' | 'seeding' | 'live' | 'offline' | 'closing' | 'stopped'

/** One connection to another peer, as the snapshot records it. */
export interface PeerLink {
  site: string | undefined
  remote: string
  /** `ditto`: a peer in Ditto's presence graph (a Ditto mesh). */
  direction: 'inbound' | 'outbound' | 'ditto'
  state: string
  changesSent: number
  changesReceived: number
  /** How many of our changes the peer has not acknowledged yet (builtin replication). */
  lag?: number
  lastError?: string
  /** Chunks held back because the peer sent faster than `limits.maxChangesPerSecond` (when any were). */
  throttled?: number
  /** How the link is protected: `psk` (encrypted with the mesh secret, the default), `certificate` (`wss://`), `insecure` (plain). */
  security?: LinkSecurity
}

/** The hub link as the snapshot records it. */
export type HubLinkSnapshot = Omit<HubStatus, 'retries'>

/**
 * What a running `meshmirror peer` writes to `<mesh dir>/meshmirror.status.json`:
 * within a second of a change it shows, and every 10 s while nothing changes.
 */
export interface PeerSnapshot {
  version: 1
  pid: number
  /** The process's memory, MB: resident, the JavaScript heap in use, and memory held outside it (buffers, native). */
  memory?: { rssMb: number; heapUsedMb: number; externalMb: number }
  hostname: string
  startedAt: string
  updatedAt: string
  phase: PeerPhase
  config?: string
  database: string
  meshDir: string
  meshId: string
  siteId: string
  listen?: { host: string; port: number }
  /** Set when the config asks for plain links (`insecure: true`). */
  insecure?: true
  peers: PeerLink[]
  /** The link to the hub (config key `hub`): server, state, position, lag. */
  hub?: HubLinkSnapshot
  /** What deserves attention: unencrypted links, writes found by polling, foreign keys with no index, long transactions, documents found out of step. */
  warnings?: string[]
  /** Documents per mirrored collection in the mesh. */
  collections: Record<string, number>
  /** Rows per mirrored table in the database. */
  tables: Record<string, number>
  sync: {
    applied: number
    pushed: number
    rejected: number
    /** Received rows waiting for their parent row (applied when it lands); `meshmirror parked` lists them. */
    parked: number
    /** Received documents the database or the table refused, kept with their reason and retried at start. */
    refused: number
    /** Versions that lost a merge, kept in the mesh store; `meshmirror conflicts` lists them. */
    conflicts?: number
    errors: number
    busyRetries: number
    /** Transactions that held the database's write lock for a second or more (the app's writes waited as long), and the longest, ms. */
    longTransactions?: { count: number; longestMs: number }
    queueDepth: number
    /** Remote rows applied per second over the last interval. */
    applyRate: number
    /** Local changes sent per second over the last interval. */
    pushRate: number
    /** Receipt to commit of the last applied batch, ms. */
    lagMs: number
    /** Age of the oldest local change at the last drain, ms. */
    localLagMs: number
    /** Comparisons with the mesh (`verifyIntervalMs`): runs, the last one's end (epoch ms), documents found out of step. */
    verify?: { runs: number; lastAt: number | null; drifted: number }
  }
  /** The latest progress of a long startup step. */
  progress?: { phase: string; model?: string; done: number; total?: number }
  lastError?: string
  /** A Postgres repository's pool and outbox (absent for SQLite). */
  repository?: {
    kind: 'postgres'
    pool: { size: number; total: number; idle: number; waiting: number }
    /** Captured changes not yet sent, and the capture time of the oldest (ms since the epoch). */
    outbox: { depth: number; oldestAt: number | null }
    /** Whether the LISTEN connection that wakes the mirror is up. */
    listening: boolean
    listenReconnects: number
  }
  /** Foreign keys referencing mirrored tables with no index on their columns (SQLite): each parent removal reads the child table. */
  unindexedForeignKeys?: { table: string; columns: string[]; parent: string }[]
  /** How the app's writes are found (SQLite): file notifications, or polling and why. */
  changeDetection?: ChangeDetection
}

/** The warnings a snapshot calls for (from its fields, so a snapshot of an earlier version gets them too). */
export function snapshotWarnings(
  s: Pick<PeerSnapshot, 'insecure' | 'peers' | 'unindexedForeignKeys' | 'changeDetection'> & {
    sync?: Pick<PeerSnapshot['sync'], 'verify' | 'longTransactions'>
  },
): string[] {
  const out: string[] = []
  const found = s.changeDetection
  if (found?.mode === 'poll' && found.reason !== 'disabled') {
    out.push(
      `the app's writes are ${describeChangeDetection(found)}; each waits up to ${found.pollMs} ms before it is sent`,
    )
  }
  for (const fk of s.unindexedForeignKeys ?? []) out.push(unindexedForeignKeyAdvice(fk))
  const long = s.sync?.longTransactions
  if (long && long.count > 0) {
    out.push(
      `${long.count} transactions held the database's write lock for a second or more (longest ${long.longestMs} ms): the app's writes waited as long (see the peer's log for where the time went)`,
    )
  }
  const drifted = s.sync?.verify?.drifted ?? 0
  if (drifted > 0) {
    out.push(`${drifted} documents were found out of step with the mesh and applied again from it (see the peer's log)`)
  }
  if (s.insecure) {
    out.push(
      'replication links are not encrypted (insecure: true): anyone on the network can read and alter what they carry',
    )
  }
  for (const p of s.peers) {
    if (p.security === 'insecure' && !s.insecure) out.push(`link ${p.remote} is not encrypted`)
  }
  return out
}

/** What to tell the owner of a foreign key no index serves. */
export function unindexedForeignKeyAdvice(fk: { table: string; columns: string[]; parent: string }): string {
  const cols = fk.columns.join(', ')
  return `${fk.table} (${cols}) references ${fk.parent} with no index: each removal of a row of ${fk.parent} reads all of ${fk.table} while holding the write lock, and the app's writes wait; add one: CREATE INDEX ${[fk.table, ...fk.columns].join('_')} ON ${fk.table} (${cols})`
}

/** Writes a snapshot atomically (a reader never sees half of one). */
export function writeSnapshot(dir: string, snapshot: PeerSnapshot): void {
  const file = join(dir, STATUS_FILE)
  const tmp = `${file}.${process.pid}.tmp`
  writeFileSync(tmp, `${JSON.stringify(snapshot, null, 2)}\n`)
  renameSync(tmp, file)
}

/** The snapshot in a mesh directory, or undefined when there is none (or it cannot be read). */
export function readSnapshot(dir: string): PeerSnapshot | undefined {
  try {
    const s = JSON.parse(readFileSync(join(dir, STATUS_FILE), 'utf8')) as PeerSnapshot
    return s?.version === 1 ? s : undefined
  } catch {
    return undefined
  }
}

export function removeSnapshotTmp(dir: string): void {
  rmSync(join(dir, `${STATUS_FILE}.${process.pid}.tmp`), { force: true })
}

/** How the app's writes are found, in words: `found at once through file notifications (…)`, `polled every 25 ms: …`. */
export function describeChangeDetection(d: ChangeDetection): string {
  if (d.mode === 'off') return 'not looked for yet'
  if (d.mode === 'watch')
    return `found at once through file notifications (polled every ${d.pollMs} ms as a safety net)`
  const polled = `polled every ${d.pollMs} ms`
  switch (d.reason) {
    case 'disabled':
      return `${polled} (watchDatabase: false)`
    case 'no-file':
      return `${polled}: there is no database file to watch`
    case 'notifications-missed':
      return `${polled}: commits arrived that no file notification announced (a file system that delivers none, such as some network file systems)`
    case 'watch-unavailable':
      return `${polled}: the database's directory cannot be watched (${d.error ?? 'unknown error'}${WATCH_ADVICE[d.error ?? ''] ?? ''})`
    default:
      return polled
  }
}

/** What to do about the errors Linux gives when inotify runs out. */
const WATCH_ADVICE: Record<string, string> = {
  ENOSPC: ': no inotify watches are left; raise fs.inotify.max_user_watches',
  EMFILE: ': no inotify instances are left; raise fs.inotify.max_user_instances',
}
