import { hostname } from 'node:os'
import type { SyncMetrics } from '../bridge/metrics.js'
import type { HubStatus } from '../hub/hub-link.js'
import type { MeshStore } from '../mesh/mesh-store.js'
import { redactUrl } from '../postgres/postgres-repository.js'
import type { Repository } from '../repository/repository.js'
import type { ResolvedConfig } from './load-config.js'
import type { ResolvedModels } from './resolve-models.js'
import { type PeerLink, type PeerPhase, type PeerSnapshot, snapshotWarnings } from './status-snapshot.js'

/** What a status snapshot counts in the stores. */
export interface StoreCounts {
  /** Documents per mirrored collection in the mesh. */
  collections: Record<string, number>
  /** Rows per mirrored table (0 before the repository is open). */
  tables: Record<string, number>
  /** Rows kept as parked or refused. */
  kept: { parked: number; refused: number }
  /** Conflicts the mesh recorded (0 for a mesh that keeps none). */
  conflicts: number
}

/** The counts of a peer whose stores are closed: nothing is read any more. */
export function emptyCounts(): StoreCounts {
  return { collections: {}, tables: {}, kept: { parked: 0, refused: 0 }, conflicts: 0 }
}

/** Counts what the snapshot reports of the mesh and the repository. */
export async function countStores(
  mesh: MeshStore,
  repository: Repository | undefined,
  models: ResolvedModels,
): Promise<StoreCounts> {
  const counts = emptyCounts()
  if (repository) counts.kept = await repository.parkedCounts()
  if (mesh.conflictCount) counts.conflicts = await mesh.conflictCount()
  for (const a of models.adapters) counts.collections[a.collection] = await mesh.count({ collection: a.collection })
  for (const def of models.models) {
    counts.tables[def.table ?? def.name] = repository ? await repository.count(def.name) : 0
  }
  return counts
}

/** Longest the snapshot's counts are reused while nothing announced a change. */
export const COUNTS_MAX_AGE_MS = 10_000

/**
 * The snapshot's counts, read again only when they may have changed: the
 * mesh committed something (its cursor moved), the bridge applied, parked,
 * refused or sent something (its metrics moved), or the last count is
 * `COUNTS_MAX_AGE_MS` old (a change neither shows, such as the app writing
 * a table the bridge only receives into). Counting every table and
 * collection on every snapshot, once a second, was most of what an idle
 * peer did, and grew with the data.
 */
export class StoreCountCache {
  private value: StoreCounts | undefined
  private key = ''
  private countedAt = 0

  constructor(private readonly maxAgeMs = COUNTS_MAX_AGE_MS) {}

  async read(
    mesh: MeshStore,
    repository: Repository | undefined,
    models: ResolvedModels,
    metrics: SyncMetrics | undefined,
    now: number,
  ): Promise<StoreCounts> {
    // Read before counting: a commit during the count changes the key again, so it is counted next time.
    const key = `${repository ? 'r' : '-'}|${await mesh.currentCursor()}|${metricsKey(metrics)}`
    if (this.value && key === this.key && now - this.countedAt < this.maxAgeMs) return this.value
    this.value = await countStores(mesh, repository, models)
    this.key = key
    this.countedAt = now
    return this.value
  }
}

function metricsKey(m: SyncMetrics | undefined): string {
  return m ? `${m.received},${m.applied},${m.parked},${m.rejected},${m.pushed}` : ''
}

/** An idle peer's snapshot is written out again after this many status intervals, its content unchanged. */
export const IDLE_SNAPSHOT_INTERVALS = 10

/**
 * Tells which snapshots are worth writing out (the status file, the
 * `--json` status line): one that shows something the last one written did
 * not (its time and the process's memory aside), or the first after
 * `everyMs`. An idle peer then rewrites nothing once a second.
 */
export class SnapshotChanges {
  private shown = ''
  private shownAt = Number.NEGATIVE_INFINITY

  constructor(private readonly everyMs: number) {}

  /** Forgets what was last written (its write failed): the next snapshot is written whatever it shows. */
  forget(): void {
    this.shown = ''
  }

  /** True when `s` is to be written; it is then remembered as the last one written. */
  take(s: PeerSnapshot, now: number): boolean {
    const { updatedAt: _at, memory: _memory, ...shown } = s
    const key = JSON.stringify(shown)
    if (key === this.shown && now - this.shownAt < this.everyMs) return false
    this.shown = key
    this.shownAt = now
    return true
  }
}

/** Everything a status snapshot reports, read from a running peer at the moment it is taken. */
export interface SnapshotParts {
  config: ResolvedConfig
  meshDir: string
  siteId: string
  /** When the peer started (ISO time). */
  startedAt: string
  /** When the snapshot is taken (ms since the epoch). */
  now: number
  phase: PeerPhase
  /** The port replication listens on, while it does. */
  listenPort: number | undefined
  peers: readonly PeerLink[]
  /** The hub link, when there is one. */
  hub?: HubStatus | undefined
  counts: StoreCounts
  /** The sync coordinator's metrics, once it runs. */
  metrics: SyncMetrics | undefined
  /** Remote rows applied and local changes sent, per second. */
  rates: { apply: number; push: number }
  progress: PeerSnapshot['progress']
  lastError: string | undefined
  /** The repository's own state, when it reports one (a Postgres pool and outbox). */
  repository?: PeerSnapshot['repository']
  unindexedForeignKeys?: PeerSnapshot['unindexedForeignKeys']
  changeDetection?: PeerSnapshot['changeDetection']
}

/** The status snapshot of a peer, as `meshmirror status` and the `snapshot` event show it. */
export function buildSnapshot(p: SnapshotParts): PeerSnapshot {
  const { config, metrics: m } = p
  const peers = [...p.peers]
  const insecure = config.insecure === true ? ({ insecure: true } as const) : {}
  const unindexed = p.unindexedForeignKeys?.length ? { unindexedForeignKeys: [...p.unindexedForeignKeys] } : {}
  const detection = p.changeDetection ? { changeDetection: p.changeDetection } : {}
  const sync: PeerSnapshot['sync'] = {
    applied: m?.applied ?? 0,
    pushed: m?.pushed ?? 0,
    rejected: m?.rejected ?? 0,
    parked: p.counts.kept.parked,
    refused: p.counts.kept.refused,
    conflicts: p.counts.conflicts,
    errors: m?.errors ?? 0,
    busyRetries: m?.busyRetries ?? 0,
    ...(m ? { longTransactions: m.longTransactions } : {}),
    queueDepth: m?.queueDepth ?? 0,
    applyRate: Math.round(p.rates.apply * 10) / 10,
    pushRate: Math.round(p.rates.push * 10) / 10,
    lagMs: m?.lagMs ?? 0,
    localLagMs: m?.localLagMs ?? 0,
    ...(m ? { verify: m.verify } : {}),
  }
  const warnings = snapshotWarnings({ ...insecure, peers, ...unindexed, ...detection, sync })
  return {
    version: 1,
    pid: process.pid,
    memory: memoryMb(),
    hostname: hostname(),
    startedAt: p.startedAt,
    updatedAt: new Date(p.now).toISOString(),
    phase: p.phase,
    ...(config.file ? { config: config.file } : {}),
    database: redactUrl(config.database),
    meshDir: p.meshDir,
    meshId: config.meshId,
    siteId: p.siteId,
    ...(config.listen && p.listenPort !== undefined
      ? { listen: { host: config.listen.host, port: p.listenPort } }
      : {}),
    ...insecure,
    peers,
    ...(p.hub ? { hub: hubSnapshot(p.hub) } : {}),
    ...(warnings.length > 0 ? { warnings } : {}),
    collections: p.counts.collections,
    tables: p.counts.tables,
    sync,
    ...(p.progress ? { progress: p.progress } : {}),
    ...(p.lastError ? { lastError: p.lastError } : {}),
    ...(p.repository ? { repository: p.repository } : {}),
    ...unindexed,
    ...detection,
  }
}

function hubSnapshot(h: HubStatus): NonNullable<PeerSnapshot['hub']> {
  return {
    server: h.server,
    state: h.state,
    bucket: h.bucket,
    prefix: h.prefix,
    position: h.position,
    lag: h.lag,
    unpushed: h.unpushed,
    pushed: h.pushed,
    received: h.received,
    bytesSent: h.bytesSent,
    bytesReceived: h.bytesReceived,
    caughtUp: h.caughtUp,
    lastError: h.lastError,
  }
}

function memoryMb(): NonNullable<PeerSnapshot['memory']> {
  const m = process.memoryUsage()
  const mb = (bytes: number) => Math.round(bytes / 104_857.6) / 10
  return { rssMb: mb(m.rss), heapUsedMb: mb(m.heapUsed), externalMb: mb(m.external) }
}
