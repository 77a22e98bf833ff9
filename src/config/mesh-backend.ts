import { resolve } from 'node:path'
import { isDittoDir } from '../ditto/describe-store.js'
import { type DittoMeshInstance, dittoEngine, openDittoMesh } from '../ditto/engine.js'
import { builtinEngine } from '../engine/builtin-engine.js'
import { diagnose, openMeshInstance } from '../engine/default-instance.js'
import type { BuiltinMesh } from '../engine/types.js'
import type { HubLink, HubStatus } from '../hub/hub-link.js'
import type { HubCollection } from '../hub/hub-options.js'
import { type Diagnosis, diagnoseDir } from '../instance/doctor.js'
import type { LockOptions } from '../instance/lock.js'
import type { EngineInstance } from '../instance/types.js'
import type { Logger } from '../logger.js'
import type { MeshStore } from '../mesh/mesh-store.js'
import type { PeerStatus } from '../replication/peer-session.js'
import { type ReplicationOptions, type Replicator, startReplication } from '../replication/replicator.js'
import type { ResolvedConfig } from './load-config.js'
import type { PeerLink } from './status-snapshot.js'

/**
 * The mesh a peer mirrors into, whichever store it is: its instance (the
 * locked directory and the store) and its links to other devices, which
 * `connect()` opens and `disconnect()` closes while the store stays open.
 */
export interface MeshBackend {
  readonly kind: 'builtin' | 'ditto'
  readonly instance: EngineInstance<MeshStore>
  /** The port links are accepted on, when the backend listens. */
  readonly port: number | undefined
  readonly connected: boolean
  /** The links to other devices, as the status snapshot shows them. */
  peers(): PeerLink[]
  /** The link to the hub, when the config has one and it is connected or connecting. */
  hub(): HubStatus | undefined
  connect(): Promise<void>
  disconnect(): Promise<void>
  /** A link changed state (builtin replication only). */
  onPeer(listener: (peer: PeerStatus) => void): void
  /** An error of the links after they started. */
  onError(listener: (message: string) => void): void
}

/** Opens (locks) the config's mesh directory with its backend; nothing is linked until `connect()`. */
export async function openMeshBackend(
  config: ResolvedConfig,
  options: { logger: Logger; recordConflicts: string[]; hubCollections?: HubCollection[] },
): Promise<MeshBackend> {
  const mesh = config.mesh
  const common = {
    dir: mesh.dir,
    strategy: mesh.strategy ?? 'shared',
    onLocked: mesh.onLocked ?? 'fail',
    ...(mesh.lockTimeoutMs === undefined ? {} : { lockTimeoutMs: mesh.lockTimeoutMs }),
    healthIntervalMs: 0,
    logger: options.logger,
  } as const
  if (mesh.backend === 'ditto') {
    // The SDK is an optional dependency: it is loaded at this open, and a missing one is named then.
    const { sync, ...ditto } = mesh.ditto ?? {}
    const instance = await openDittoMesh({ ...ditto, ...common, sync: false })
    return new DittoBackend(instance, sync !== false, options.logger)
  }
  const { recordConflicts } = options
  const instance = await openMeshInstance({
    ...common,
    engine: builtinEngine(recordConflicts.length > 0 ? { recordConflicts } : {}),
  })
  return new BuiltinBackend(config, instance, options.logger, options.hubCollections)
}

class BuiltinBackend implements MeshBackend {
  readonly kind = 'builtin'
  private replication: Replicator | undefined
  private hubLink: HubLink | undefined
  private listenPort: number | undefined
  private readonly peerListeners: ((peer: PeerStatus) => void)[] = []
  private readonly errorListeners: ((message: string) => void)[] = []

  constructor(
    private readonly config: ResolvedConfig,
    readonly instance: EngineInstance<BuiltinMesh>,
    private readonly logger: Logger,
    private readonly hubCollections: HubCollection[] | undefined,
  ) {
    this.listenPort = config.listen?.port
  }

  hub(): HubStatus | undefined {
    return this.hubLink?.status()
  }

  get port(): number | undefined {
    return this.replication?.port ?? this.listenPort
  }

  get connected(): boolean {
    return this.replication !== undefined
  }

  peers(): PeerLink[] {
    return (this.replication?.peers() ?? []).map((peer) => ({
      site: peer.site,
      remote: peer.remote,
      direction: peer.direction,
      state: peer.state,
      changesSent: peer.changesSent,
      changesReceived: peer.changesReceived,
      lag: peer.lag,
      ...(peer.lastError ? { lastError: peer.lastError } : {}),
      ...(peer.throttled > 0 ? { throttled: peer.throttled } : {}),
      ...(peer.security ? { security: peer.security } : {}),
    }))
  }

  async connect(): Promise<void> {
    if (this.replication) return
    const c = this.config
    const options: ReplicationOptions = {
      meshId: c.meshId,
      // The schema requires a secret with the builtin engine.
      secret: c.secret as string,
      ...(c.previousSecrets?.length ? { previousSecrets: c.previousSecrets } : {}),
      ...(c.insecure ? { insecure: true } : {}),
      logger: this.logger,
      // A port taken at the first connect is kept across disconnects.
      ...(c.listen ? { listen: { host: c.listen.host, port: this.listenPort ?? 0 } } : {}),
      ...(c.peers ? { peers: c.peers } : {}),
      ...(c.discovery ? { discovery: true } : {}),
      ...(c.reconnect ? { reconnect: c.reconnect } : {}),
      ...(c.limits ? { limits: c.limits } : {}),
    }
    // A listen address taken since the probe fails here with ADDRESS_IN_USE too.
    const replication = await startReplication(this.instance.store, options)
    this.replication = replication
    this.listenPort = replication.port ?? this.listenPort
    replication.on('peer', (p) => {
      for (const l of this.peerListeners) l(p)
    })
    replication.on('error', ({ error }) => {
      for (const l of this.errorListeners) l(`replication: ${error.message}`)
    })
    if (c.hub) {
      // The NATS client is loaded only by a peer that has a hub.
      const { startHubLink } = await import('../hub/hub-link.js')
      const link = startHubLink(this.instance.store, {
        ...c.hub,
        ...(this.hubCollections ? { collections: this.hubCollections } : {}),
        logger: this.logger,
      })
      this.hubLink = link
      link.on('error', ({ error }) => {
        for (const l of this.errorListeners) l(`hub: ${error.code}: ${error.message}`)
      })
    }
  }

  async disconnect(): Promise<void> {
    const r = this.replication
    const h = this.hubLink
    this.replication = undefined
    this.hubLink = undefined
    await Promise.all([r?.close(), h?.close()])
  }

  onPeer(listener: (peer: PeerStatus) => void): void {
    this.peerListeners.push(listener)
  }

  onError(listener: (message: string) => void): void {
    this.errorListeners.push(listener)
  }
}

/** The Ditto SDK as the mesh: Ditto's own sync links the devices; presence stands for the peers. */
class DittoBackend implements MeshBackend {
  readonly kind = 'ditto'
  readonly port = undefined
  private syncing = false

  constructor(
    readonly instance: DittoMeshInstance,
    private readonly wantSync: boolean,
    private readonly logger: Logger,
  ) {}

  get connected(): boolean {
    return this.syncing
  }

  hub(): undefined {
    return undefined
  }

  peers(): PeerLink[] {
    if (!this.syncing) return []
    try {
      return this.instance.store.presence().peers.map((p) => ({
        site: p.peerKey,
        remote: p.deviceName,
        direction: 'ditto',
        state: 'live',
        changesSent: 0,
        changesReceived: 0,
      }))
    } catch {
      // Closed while reading: no peers.
      return []
    }
  }

  async connect(): Promise<void> {
    if (this.syncing || !this.wantSync) return
    const store = this.instance.store
    if (!store.presence().licensed) {
      this.logger.warn(
        'no Ditto licence token (mesh.ditto.licenseToken or env DITTO_LICENSE_TOKEN): the local Ditto store is mirrored, but sync with other devices does not start',
      )
      return
    }
    store.startSync()
    this.syncing = true
  }

  async disconnect(): Promise<void> {
    if (!this.syncing) return
    this.syncing = false
    this.instance.store.stopSync()
  }

  onPeer(): void {}

  onError(): void {}
}

/**
 * Examines a mesh directory of either backend without opening it or
 * loading the Ditto SDK: a Ditto directory is described by the Ditto
 * engine (a plain Ditto process holding it included), any other by the
 * builtin one.
 */
export function diagnoseMeshDir(dir: string, lockOptions?: LockOptions): Diagnosis {
  const abs = resolve(dir)
  if (isDittoDir(abs) && !builtinEngine().isMeshDir(abs)) return diagnoseDir(abs, dittoEngine(), lockOptions)
  return diagnose(abs, lockOptions)
}
