import type { SyncEvents } from '../bridge/events.js'
import { createSyncRegistry, type SyncRegistry } from '../bridge/registry.js'
import type { DashboardOptions } from '../dashboard/access.js'
import type { RunningDashboard } from '../dashboard/server.js'
import type { HubCollection } from '../hub/hub-options.js'
import { type Logger, silentLogger } from '../logger.js'
import type { ConflictRecord } from '../mesh/conflict.js'
import type { MeshStore } from '../mesh/mesh-store.js'
import type { FilterScalar } from '../mesh/query.js'
import {
  isPostgresUrl,
  openPostgresRepository,
  type PostgresRepository,
  redactUrl,
} from '../postgres/postgres-repository.js'
import type { PeerStatus } from '../replication/peer-session.js'
import type { Repository } from '../repository/repository.js'
import { openSqliteRepository } from '../repository/sqlite-repository.js'
import { Emitter } from '../util/emitter.js'
import { dashboardOptions, servePeerDashboard } from './dashboard-source.js'
import type { ResolvedConfig } from './load-config.js'
import { type MeshBackend, openMeshBackend } from './mesh-backend.js'
import {
  buildSnapshot,
  emptyCounts,
  IDLE_SNAPSHOT_INTERVALS,
  SnapshotChanges,
  StoreCountCache,
} from './peer-snapshot.js'
import { probeListen } from './probe-listen.js'
import { RateMeter } from './rate-meter.js'
import { type ResolvedModels, resolveModels } from './resolve-models.js'
import {
  type PeerPhase,
  type PeerSnapshot,
  removeSnapshotTmp,
  unindexedForeignKeyAdvice,
  writeSnapshot,
} from './status-snapshot.js'

/** What a running peer reports. */
export interface PeerEvents {
  phase: { phase: PeerPhase }
  progress: SyncEvents['progress']
  peer: PeerStatus
  rejected: SyncEvents['rejected']
  parked: SyncEvents['parked']
  /** A verification found documents out of step with the mesh. */
  drift: SyncEvents['drift']
  /** A version that lost a merge was kept, for the first time on this device. */
  conflict: ConflictRecord
  error: { phase: string; model?: string; error: unknown }
  snapshot: PeerSnapshot
  /** The dashboard is served (its address carries the token, when one is required). */
  dashboard: { url: string; host: string; port: number; tokenGenerated: boolean }
}

/** A database mirrored into the mesh, running: instance, repository, replication and sync. */
export interface RunningPeer extends AsyncDisposable {
  readonly siteId: string
  /** The mesh directory in use (with strategy `unique`, this run's own directory). */
  readonly meshDir: string
  readonly port: number | undefined
  readonly models: ResolvedModels
  /** The dashboard this peer serves, once started, when one was asked for (option `dashboard` or the config's key). */
  readonly dashboard: RunningDashboard | undefined
  snapshot(): Promise<PeerSnapshot>
  on<E extends keyof PeerEvents>(event: E, listener: (payload: PeerEvents[E]) => void): () => void
  /** Disconnects from every peer (false) or connects again (true); local sync goes on. */
  setOnline(online: boolean): Promise<void>
  /** Staged and idempotent: sync flushed, peers disconnected, database closed, directory lock released last. */
  close(): Promise<void>
}

/** A peer whose directory is locked and whose config is checked, not yet syncing: attach listeners, then `start()`. */
export interface OpenedPeer extends RunningPeer {
  /** Opens the repository, replication and sync; resolves once sync is live. Closes the peer if it fails. */
  start(): Promise<void>
}

/**
 * Prepares mirroring a config's database: checks everything that can be
 * checked without writing (config, tables, the listen address), then opens
 * the mesh directory (taking its lock). Nothing else is opened until `start()`.
 */
export async function openPeer(config: ResolvedConfig, options: PeerOptions = {}): Promise<OpenedPeer> {
  const logger = options.logger ?? silentLogger
  const dashboard = dashboardOptions(config, options.dashboard)
  const models = await resolveModels(config)
  if (config.listen) await probeListen(config.listen, config.file)
  if (dashboard && dashboard.port !== 0) {
    await probeListen({ host: dashboard.host ?? '127.0.0.1', port: dashboard.port }, config.file, 'dashboard')
  }
  const backend = await openMeshBackend(config, {
    logger,
    recordConflicts: conflictCollections(config, models),
    ...(config.hub ? { hubCollections: hubCollections(models) } : {}),
  })
  return new Peer(config, models, backend, logger, dashboard)
}

/** How to run a peer. */
export interface PeerOptions {
  logger?: Logger
  /**
   * Serve the dashboard (see the config's `dashboard` key, which this
   * replaces); `false` turns a configured one off.
   */
  dashboard?: DashboardOptions | false
}

/**
 * What a peer mirrors through the hub: each adapter's collection, with its
 * scope when the adapter's filter is plain field values (`{ branch_id: 1 }`);
 * any other filter receives the collection whole and the bridge keeps to the scope.
 */
function hubCollections(models: ResolvedModels): HubCollection[] {
  return models.adapters.map((a) => {
    const filter = a.observerQuery?.(models.context)
    const plain =
      filter &&
      Object.keys(filter).length > 0 &&
      Object.entries(filter).every(
        ([k, v]) => !k.startsWith('$') && (v === null || ['string', 'number', 'boolean'].includes(typeof v)),
      )
    return plain ? { name: a.collection, scope: filter as Record<string, FilterScalar> } : { name: a.collection }
  })
}

/** The collections of the table mappings with `recordConflicts: true`. */
function conflictCollections(config: ResolvedConfig, models: ResolvedModels): string[] {
  const out: string[] = []
  for (const mapping of config.tables ?? []) {
    if (mapping.recordConflicts !== true) continue
    // The mapped table's model, as resolved against the database (table names match case-insensitively).
    const table = mapping.table.toLowerCase()
    const def = models.models.find((d) => (d.table ?? d.name).toLowerCase() === table)
    const adapter = def && models.adapters.find((a) => a.model === def.name)
    if (adapter) out.push(adapter.collection)
  }
  return out
}

/**
 * Starts mirroring a config's database: {@link openPeer}, then `start()`.
 * Resolves once sync is live (catch-up, outbox and seeding done).
 *
 * @example
 * ```ts
 * const peer = await startPeer(await loadConfig('./meshmirror.config.json'))
 * peer.on('snapshot', (s) => console.log(s.phase, s.collections))
 * await peer.close()
 * ```
 */
export async function startPeer(config: ResolvedConfig, options: PeerOptions = {}): Promise<RunningPeer> {
  const peer = await openPeer(config, options)
  await peer.start()
  return peer
}

class Peer implements OpenedPeer {
  private readonly events = new Emitter<PeerEvents>(silentLogger)
  private repository: Repository | undefined
  /** The Postgres repository, when the database is one (its pool and outbox go into the snapshot). */
  private postgres: PostgresRepository | undefined
  private registry: SyncRegistry | undefined
  private phase: PeerPhase = 'starting'
  private progress: PeerSnapshot['progress']
  private lastError: string | undefined
  /** The last failure to write the status file, while it lasts (logged once). */
  private statusFileError: string | undefined
  private unindexedForeignKeys: PeerSnapshot['unindexedForeignKeys'] = []
  private timer: NodeJS.Timeout | undefined
  private closing: Promise<void> | undefined
  private readonly startedAt = new Date().toISOString()
  private readonly applyRate: RateMeter
  private readonly pushRate: RateMeter
  private writing: Promise<unknown> = Promise.resolve()
  private storesClosed = false
  private readonly counts = new StoreCountCache()
  private readonly fileChanges: SnapshotChanges
  dashboard: RunningDashboard | undefined

  constructor(
    private readonly config: ResolvedConfig,
    readonly models: ResolvedModels,
    private readonly backend: MeshBackend,
    private readonly logger: Logger,
    private readonly dashboardWanted?: DashboardOptions,
  ) {
    const now = Date.now()
    this.applyRate = new RateMeter(now)
    this.pushRate = new RateMeter(now)
    this.fileChanges = new SnapshotChanges((config.statusIntervalMs ?? 1000) * IDLE_SNAPSHOT_INTERVALS)
    this.mesh.on('conflict', (c) => this.events.emit('conflict', c))
    backend.onPeer((p) => this.events.emit('peer', p))
    backend.onError((message) => {
      this.lastError = message
    })
  }

  private get instance() {
    return this.backend.instance
  }

  private get mesh(): MeshStore {
    return this.instance.store
  }

  get siteId(): string {
    return this.mesh.siteId
  }

  get meshDir(): string {
    return this.instance.dir
  }

  get port(): number | undefined {
    return this.backend.port
  }

  on<E extends keyof PeerEvents>(event: E, listener: (payload: PeerEvents[E]) => void): () => void {
    return this.events.on(event, listener)
  }

  private setPhase(phase: PeerPhase): void {
    if (this.phase === phase) return
    this.phase = phase
    this.events.emit('phase', { phase })
    this.persist()
  }

  async start(): Promise<void> {
    try {
      await this.boot()
    } catch (error) {
      await this.close().catch(() => undefined)
      throw error
    }
  }

  private async boot(): Promise<void> {
    this.persist()
    if (isPostgresUrl(this.config.database)) {
      const pgOptions = this.config.postgres ?? {}
      this.postgres = await openPostgresRepository({
        connectionString: this.config.database,
        models: this.models.models,
        ...pgOptions,
      })
      this.repository = this.postgres
    } else {
      const sqlite = await openSqliteRepository({
        file: this.config.database,
        models: this.models.models,
        ...(this.config.watchDatabase === false ? { watchFile: false } : {}),
        logger: this.logger,
      })
      this.repository = sqlite
      this.unindexedForeignKeys = [...sqlite.unindexedForeignKeys]
      for (const fk of this.unindexedForeignKeys) this.logger.warn(unindexedForeignKeyAdvice(fk), { ...fk })
    }
    await this.connect()
    const registry = createSyncRegistry({
      mesh: this.mesh,
      repository: this.repository,
      adapters: this.models.adapters,
      context: this.models.context,
      ...(this.config.settings ? { settings: this.config.settings } : {}),
      logger: this.logger,
    })
    this.registry = registry
    registry.on('progress', (p) => {
      this.progress = p
      if (p.phase === 'catch-up') this.setPhase('catching-up')
      if (p.phase === 'seed') this.setPhase('seeding')
      this.events.emit('progress', p)
    })
    registry.on('rejected', (r) => this.events.emit('rejected', r))
    registry.on('parked', (p) => this.events.emit('parked', p))
    registry.on('drift', (d) => this.events.emit('drift', d))
    registry.on('error', (e) => {
      this.lastError = `${e.phase}${e.model ? ` ${e.model}` : ''}: ${String((e.error as Error)?.message ?? e.error)}`
      this.events.emit('error', e)
    })
    this.timer = setInterval(() => this.persist(), this.config.statusIntervalMs ?? 1000)
    this.timer.unref()
    // Served before sync starts, so a long catch-up or seeding shows as it goes.
    if (this.dashboardWanted) {
      const d = await this.serveDashboard(this.dashboardWanted)
      this.dashboard = d
      this.events.emit('dashboard', { url: d.url, host: d.host, port: d.port, tokenGenerated: d.tokenGenerated })
    }
    await registry.start()
    await this.followColumns(registry)
    this.progress = undefined
    if (!this.closing) this.setPhase(this.backend.connected ? 'live' : 'offline')
  }

  /**
   * A table that gained a column since the last run (ALTER TABLE … ADD
   * COLUMN) re-reads its collection from the mesh once, so rows mirrored
   * before get the values other devices already sent for it.
   */
  private async followColumns(registry: SyncRegistry): Promise<void> {
    const repo = this.repository!
    for (const [model, columns] of this.models.columns) {
      const key = `columns:${model}`
      const now = columns.join(',')
      const before = await repo.checkpoint(key)
      if (before === now) continue
      const gained = before === undefined ? [] : columns.filter((c) => !before.split(',').includes(c))
      const receives = this.models.adapters.find((a) => a.model === model)?.direction !== 'sendOnly'
      if (gained.length > 0 && receives) {
        this.logger.info('table gained columns; reading its collection again', { model, columns: gained })
        await registry.coordinator.restore(model, { followLinks: false })
      }
      await repo.transaction(async (tx) => tx.setCheckpoint(key, now))
    }
  }

  private serveDashboard(options: DashboardOptions): Promise<RunningDashboard> {
    return servePeerDashboard(
      {
        backend: this.backend.kind,
        database: redactUrl(this.config.database),
        models: this.models,
        mesh: () => this.mesh,
        repository: () => this.repository,
        metrics: () => this.running()?.metrics(),
        snapshot: () => this.snapshot(),
        on: (event, listener) => this.on(event, listener),
      },
      options,
      this.logger,
    )
  }

  private async connect(): Promise<void> {
    await this.backend.connect()
  }

  async setOnline(online: boolean): Promise<void> {
    if (this.closing) return
    if (!online && this.backend.connected) {
      await this.backend.disconnect()
      this.setPhase('offline')
    } else if (online && !this.backend.connected) {
      await this.backend.connect()
      if (this.backend.connected) this.setPhase('live')
    }
  }

  async snapshot(): Promise<PeerSnapshot> {
    const metrics = this.running()?.metrics()
    const now = Date.now()
    const rates = {
      apply: this.applyRate.read(metrics?.applied ?? 0, now),
      push: this.pushRate.read(metrics?.pushed ?? 0, now),
    }
    const counts = this.storesClosed
      ? emptyCounts()
      : await this.counts.read(this.mesh, this.repository, this.models, metrics, now)
    const repositoryState = this.storesClosed || !this.postgres ? undefined : await this.postgres.state()
    const detection = this.storesClosed ? undefined : this.repository?.stats().changeDetection
    return buildSnapshot({
      config: this.config,
      meshDir: this.instance.dir,
      siteId: this.mesh.siteId,
      startedAt: this.startedAt,
      now,
      phase: this.phase,
      listenPort: this.backend.port,
      peers: this.backend.peers(),
      hub: this.backend.hub(),
      counts,
      metrics,
      rates,
      progress: this.progress,
      lastError: this.lastError,
      ...(repositoryState ? { repository: repositoryState } : {}),
      unindexedForeignKeys: this.unindexedForeignKeys,
      ...(detection ? { changeDetection: detection } : {}),
    })
  }

  private running() {
    try {
      return this.registry?.coordinator
    } catch {
      return undefined
    }
  }

  /**
   * Takes a snapshot and emits it; writes it to the status file when what it
   * shows changed, and at least every `IDLE_SNAPSHOT_INTERVALS` intervals.
   * Writes are serialised; a failure is recorded, never thrown.
   */
  private persist(): Promise<unknown> {
    this.writing = this.writing.then(async () => {
      try {
        const s = await this.snapshot()
        if (this.fileChanges.take(s, Date.now())) this.writeStatusFile(s)
        this.events.emit('snapshot', s)
      } catch (error) {
        this.lastError = `status snapshot: ${(error as Error).message}`
      }
    })
    return this.writing
  }

  /**
   * Writes the status file. A failure (a full disk, a directory that turned
   * read-only) is logged once for each error and retried with the next
   * snapshot; the `snapshot` event and the peer's work go on meanwhile.
   */
  private writeStatusFile(s: PeerSnapshot): void {
    try {
      writeSnapshot(this.instance.dir, s)
      this.statusFileError = undefined
    } catch (error) {
      this.fileChanges.forget()
      try {
        removeSnapshotTmp(this.instance.dir)
      } catch {
        // Nothing to remove, or nothing that can be: the next write tries again.
      }
      const message = (error as Error).message
      this.lastError = `status file: ${message}`
      if (message === this.statusFileError) return
      this.statusFileError = message
      this.logger.warn('cannot write the status file: `meshmirror status` shows an older snapshot until it can', {
        dir: this.instance.dir,
        error: message,
      })
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.timer) clearInterval(this.timer)
      this.phase = 'closing'
      this.events.emit('phase', { phase: 'closing' })
      const failures: unknown[] = []
      const step = async (fn: () => Promise<void> | undefined) => {
        try {
          await fn()
        } catch (error) {
          failures.push(error)
        }
      }
      await step(() => this.dashboard?.close())
      await step(() => this.registry?.close())
      await step(() => this.backend.disconnect())
      await this.writing
      this.phase = 'stopped'
      const final = await this.snapshot()
      this.storesClosed = true
      await step(() => this.repository?.close())
      this.writeStatusFile(final)
      this.events.emit('phase', { phase: 'stopped' })
      await step(() => this.instance.close())
      if (failures.length > 0) throw failures[0]
    })()
    return this.closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }
}
