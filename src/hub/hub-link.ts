import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { type ConsumerInfo, JetStreamApiError, jetstream, jetstreamManager } from '@nats-io/jetstream'
import { type KV, type KvEntry, Kvm, type KvWatchEntry } from '@nats-io/kv'
import {
  AuthorizationError,
  type ConnectionOptions,
  connect,
  credsAuthenticator,
  type NatsConnection,
  nkeyAuthenticator,
  PermissionViolationError,
  type QueuedIterator,
} from '@nats-io/transport-node'
import type { ApplyRemoteResult, BuiltinMesh, RemoteChange, VersionVector } from '../engine/types.js'
import { covers } from '../engine/version-vector.js'
import { ErrorCode, MeshmirrorError } from '../errors.js'
import { silentLogger } from '../logger.js'
import type { FilterScalar } from '../mesh/query.js'
import { backoffMs } from '../util/backoff.js'
import { delay } from '../util/delay.js'
import { Emitter } from '../util/emitter.js'
import { assertHubOptions, type HubOptions } from './hub-options.js'
import { docKey, parseKey, scopeToken, UNSCOPED } from './keys.js'

/** Where the link to the hub is. */
export type HubState = 'connecting' | 'connected' | 'reconnecting' | 'closed'

/** The hub link as `status` and the status snapshot show it. */
export interface HubStatus {
  /** The server the link is on (or last tried). */
  server: string | undefined
  state: HubState
  bucket: string
  prefix: string
  /** The hub's revision this till has applied up to, per subject filter. */
  position: Record<string, number>
  /** Documents on the hub this till has not applied yet (as of the last delivery). */
  lag: number
  /** Local changes not yet sent to the hub. */
  unpushed: number
  /** Documents written to the hub. */
  pushed: number
  /** Documents received from the hub (their own writes coming back included). */
  received: number
  /** Writes that found the document changed on the hub since it was read, and were merged again. */
  retries: number
  bytesSent: number
  bytesReceived: number
  /** True once every filter has caught up with the hub at least once in this run. */
  caughtUp: boolean
  lastError: string | undefined
}

export interface HubLinkEvents {
  /** Something failed; the link retries. `error.code` is `HUB_UNAVAILABLE` or `HUB_PERMISSION_DENIED` when it is the hub's answer. */
  error: { error: MeshmirrorError }
  state: { state: HubState }
  /** Every filter is caught up with the hub. */
  'caught-up': Record<string, never>
}

/**
 * The steps a document takes through a link, for timing them
 * (`traceHubLink`): `publish` as its write to the hub is sent, `ack` as the
 * hub acknowledges it, `deliver` as the watch hands it to the link, `apply`
 * once its batch is committed to the mesh store.
 */
export type HubTraceStep = 'publish' | 'ack' | 'deliver' | 'apply'

/** Called at each step with the document's key and `performance.now()`. */
export type HubTrace = (step: HubTraceStep, key: string, at: number) => void

/** Times the steps of every document through `link` (not exported from the package: a diagnostic for the bench). */
export function traceHubLink(link: HubLink, trace: HubTrace | undefined): void {
  ;(link as Link).trace = trace
}

/** A till's link to the hub: pushes its mesh's commits and applies everyone else's. */
export interface HubLink extends AsyncDisposable {
  status(): HubStatus
  on<E extends keyof HubLinkEvents>(event: E, listener: (payload: HubLinkEvents[E]) => void): () => void
  close(): Promise<void>
}

/** What is known of a document on the hub: the revision and the writes its state holds. */
interface Known {
  rev: number
  v: VersionVector
}

interface Watch {
  /** Key filter inside the bucket. */
  key: string
  /** The name the position is recorded under in the mesh store. */
  cursorName: string
  position: number
  pending: number
  caughtUp: boolean
  iter: QueuedIterator<KvWatchEntry> | undefined
  /** The position recorded in the mesh store (it trails `position` when only this till's own writes came back). */
  saved: number
  /** A batch is being committed: a position saved now could land before it. */
  applying: boolean
  saveTimer: NodeJS.Timeout | undefined
  /** When something last came through the watch (performance.now()). */
  heardAt: number
  /** One of this till's own writes the watch has not passed yet: its revision, and when the hub acknowledged it. */
  echo: { rev: number; at: number } | undefined
}

/** A watch's consumer, as the client keeps it (not part of its typed interface). */
interface WatchConsumer {
  info(cached: boolean): Promise<ConsumerInfo>
}

function consumerOf(iter: QueuedIterator<KvWatchEntry>): WatchConsumer | undefined {
  return (iter as unknown as { _data?: WatchConsumer })._data
}

/** A range of local changes read for the hub: done once every write of it is acknowledged (or superseded). */
interface PushSlot {
  upTo: number
  left: number
}

/** One change to write, and the range it belongs to. */
interface PushWrite {
  c: RemoteChange
  slot: PushSlot
}

const APPLY_BATCH = 500
const PUSH_CHUNK = 256
/** Changes read from the store and not yet written to the hub, at most (the writes in flight included). */
const PUSH_AHEAD = 4 * PUSH_CHUNK
/** How often, on average, the watchdog looks at the watches' consumers (in a cluster). */
const WATCHDOG_MS = 3000
/** How long a watch may stay silent after this till's own write was acknowledged before it counts as stopped (ms). */
const ECHO_WAIT_MS = 10_000
/** How long a new watch waits for deliveries its consumer reports made before it counts them as lost (ms). */
const LOST_DELIVERY_WAIT_MS = 200
const SAVE_PUSHED_MS = 1000
const DEFAULT_CONCURRENCY = 64
/** Least time between two commits of what the hub delivers while it keeps coming (`HubOptions.applySpacingMs`). */
const DEFAULT_APPLY_SPACING_MS = 5
/**
 * How long a commit of what came from the hub waits before it is read back
 * for pushing. Such a commit is on the hub already, unless it merged local
 * writes the hub lacked; reading each one back at once cost more CPU than
 * anything else a receiving till did.
 */
const HUB_APPLIED_PUSH_MS = 50

function hashName(prefix: string, text: string): string {
  return `${prefix}${createHash('sha256').update(text).digest('hex').slice(0, 40)}`
}

/** The hub's answer as a meshmirror error: a refused subject, refused credentials, or no hub. */
export function hubError(error: unknown, servers: readonly string[], what: string): MeshmirrorError {
  if (error instanceof MeshmirrorError) return error
  const e = error as Error
  const perm =
    error instanceof PermissionViolationError ||
    (error as { cause?: unknown })?.cause instanceof PermissionViolationError ||
    /permissions violation/i.test(String(e?.message))
  if (perm) {
    const pv = (error instanceof PermissionViolationError ? error : (error as { cause?: unknown }).cause) as
      | PermissionViolationError
      | undefined
    const subject = pv?.subject
    return new MeshmirrorError(
      ErrorCode.HUB_PERMISSION_DENIED,
      `The hub refused ${what}${subject ? ` (subject ${subject})` : ''} to these credentials: ${e.message}. Check the hub's permissions for this till, and its "prefix".`,
      { cause: error, details: { servers, subject } },
    )
  }
  const auth = error instanceof AuthorizationError || /authoriz|authentic/i.test(String(e?.message))
  return new MeshmirrorError(
    ErrorCode.HUB_UNAVAILABLE,
    auth
      ? `The hub at ${servers.join(', ')} refused the credentials: ${e.message}`
      : `The hub at ${servers.join(', ')} failed ${what}: ${e?.message ?? String(error)}`,
    { cause: error, details: { servers } },
  )
}

function connectOptions(o: HubOptions, name: string): ConnectionOptions {
  const servers = typeof o.servers === 'string' ? [o.servers] : [...o.servers]
  const tls =
    o.tls === undefined || o.tls === false
      ? {}
      : {
          tls:
            o.tls === true
              ? {}
              : {
                  ...(o.tls.caFile ? { caFile: o.tls.caFile } : {}),
                  ...(o.tls.certFile ? { certFile: o.tls.certFile } : {}),
                  ...(o.tls.keyFile ? { keyFile: o.tls.keyFile } : {}),
                },
        }
  let auth: Partial<ConnectionOptions> = {}
  if (o.token !== undefined) auth = { token: o.token }
  else if (o.user !== undefined) auth = { user: o.user, ...(o.password !== undefined ? { pass: o.password } : {}) }
  else if (o.nkeySeed !== undefined) auth = { authenticator: nkeyAuthenticator(new TextEncoder().encode(o.nkeySeed)) }
  else if (o.credsFile !== undefined) {
    const file = o.credsFile
    // Read at each connect, so a renewed file is picked up.
    auth = { authenticator: credsAuthenticator(() => readFileSync(file)) }
  }
  return {
    servers,
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: o.reconnect?.minMs ?? 250,
    reconnectJitter: 100,
    pingInterval: 5_000,
    maxPingOut: 2,
    // An Error captured per request only to lengthen a timeout's stack: a cost on every write.
    noAsyncTraces: true,
    ...auth,
    ...tls,
  }
}

/**
 * Links a builtin mesh to a NATS JetStream hub. Returns at once: the link
 * connects (and reconnects) in the background; `status()` and the `error`
 * event tell how it goes.
 *
 * Each document is one key of a key-value bucket holding only its latest
 * revision: its full merge state, so a till merges what it reads exactly as
 * a peer's change. A write reads the document's revision and writes only on
 * top of it; when another till got there first, the two states are merged
 * here and written again. The link applies what others wrote through the
 * same merge peer links use, each batch together with its position on the
 * hub, so a restart resumes where it stopped.
 */
export function startHubLink(mesh: BuiltinMesh, options: HubOptions): HubLink {
  assertHubOptions(options)
  return new Link(mesh, options)
}

class Link implements HubLink {
  private readonly events: Emitter<HubLinkEvents>
  private readonly servers: string[]
  private readonly bucketName: string
  private readonly prefix: string
  private readonly logger
  /** Collections mirrored, with their scope fields (sorted) and this till's token; undefined: all, whole. */
  private readonly collections: Map<string, { fields: string[]; token: string }> | undefined
  private readonly watches: Watch[]
  private readonly pushCursorName: string
  private nc: NatsConnection | undefined
  private kv: KV | undefined
  private state: HubState = 'connecting'
  private closed = false
  private readonly known = new Map<string, Known>()
  /** Keys this till wrote at the revision it wrote them: their echo is not applied again. */
  private readonly mine = new Map<string, number>()
  /** Every local change up to this sequence is on the hub (written, or held there already). */
  private pushedSeq = 0
  /** Local changes up to this sequence are read and handed to writes. */
  private sentSeq = 0
  private pushing = false
  private pushAgain = false
  private pushTimer: NodeJS.Timeout | undefined
  private pushImmediate: NodeJS.Immediate | undefined
  /** When `pushTimer` fires (performance.now()). */
  private pushDue = 0
  /** Batches from the hub being applied: the commits meanwhile are (nearly always) theirs. */
  private applyingFromHub = 0
  /** Ranges read, oldest first: `pushedSeq` moves over those done. */
  private readonly slots: PushSlot[] = []
  /** Documents with a write queued or in flight, each with the newer state that waits for it (null: none). */
  private readonly writing = new Map<string, PushWrite | null>()
  /** Writes waiting for one of the `concurrency` places. */
  private readonly ready: { key: string; w: PushWrite }[] = []
  private active = 0
  /** Changes read and not done (in flight, waiting, or behind another write of their document). */
  private queued = 0
  /** A write failed: no new write starts, and once the last one in flight ends, pushing starts again from `pushedSeq`. */
  private pushFailure: { error: unknown } | undefined
  /** `push` stopped reading because enough was queued. */
  private pushStalled = false
  private pushEpoch = 0
  private saveTimer: NodeJS.Timeout | undefined
  private savedPushedSeq = 0
  private watchdog: NodeJS.Timeout | undefined
  private pushFailures = 0
  private offCommit: (() => void) | undefined
  private counters = { pushed: 0, received: 0, retries: 0 }
  /** When the watchdog last looked at the watches' consumers (performance.now()). */
  private consumersCheckedAt = 0
  private lastError: string | undefined
  private running: Promise<void>[] = []
  private readonly abort = new AbortController()
  private generation = 0
  trace: HubTrace | undefined

  constructor(
    private readonly mesh: BuiltinMesh,
    private readonly o: HubOptions,
  ) {
    this.logger = o.logger ?? silentLogger
    this.events = new Emitter(this.logger)
    this.servers = typeof o.servers === 'string' ? [o.servers] : [...o.servers]
    this.bucketName = o.bucket ?? 'meshmirror'
    this.prefix = o.prefix
    if (o.collections) {
      this.collections = new Map()
      for (const c of o.collections) {
        const fields = Object.keys(c.scope ?? {}).sort()
        const values = fields.map((f) => c.scope![f] as FilterScalar)
        this.collections.set(c.name, { fields, token: scopeToken(fields, values) })
      }
    }
    const keys = this.collections
      ? [...this.collections].map(([name, c]) => `${this.prefix}.${name}.${c.fields.length ? c.token : UNSCOPED}.*`)
      : [`${this.prefix}.>`]
    this.watches = keys.map((key) => ({
      key,
      cursorName: hashName('hub-', `${this.bucketName}|${key}`),
      position: 0,
      pending: 0,
      caughtUp: false,
      iter: undefined,
      saved: 0,
      applying: false,
      saveTimer: undefined,
      heardAt: 0,
      echo: undefined,
    }))
    this.pushCursorName = hashName('hubout-', `${this.bucketName}|${keys.join(',')}`)
    this.running.push(this.run())
  }

  on<E extends keyof HubLinkEvents>(event: E, listener: (payload: HubLinkEvents[E]) => void): () => void {
    return this.events.on(event, listener)
  }

  status(): HubStatus {
    const stats = this.nc?.stats()
    const position: Record<string, number> = {}
    for (const w of this.watches) position[w.key] = w.position
    return {
      server: this.nc?.getServer() ?? this.servers[0],
      state: this.state,
      bucket: this.bucketName,
      prefix: this.prefix,
      position,
      lag: this.watches.reduce((n, w) => n + w.pending, 0),
      unpushed: Math.max(0, this.localSeq - this.pushedSeq),
      ...this.counters,
      bytesSent: stats?.outBytes ?? 0,
      bytesReceived: stats?.inBytes ?? 0,
      caughtUp: this.watches.every((w) => w.caughtUp),
      lastError: this.lastError,
    }
  }

  private localSeq = 0

  /** Waits before retry `attempt`; cut short by close. */
  private pause(attempt: number): Promise<void> {
    const ms = backoffMs(attempt, {
      initialMs: this.o.reconnect?.minMs ?? 250,
      maxMs: this.o.reconnect?.maxMs ?? 5000,
      jitter: true,
    })
    return delay(ms, this.abort.signal).catch(() => undefined)
  }

  private setState(state: HubState): void {
    if (this.state === state || this.state === 'closed') return
    this.state = state
    this.events.emit('state', { state })
  }

  private fail(error: MeshmirrorError): void {
    if (this.closed) return
    this.lastError = `${error.code}: ${error.message}`
    this.logger.warn('hub link', { error: this.lastError })
    this.events.emit('error', { error })
  }

  /** Connects (again and again until it works), binds the bucket, then watches and pushes. */
  private async run(): Promise<void> {
    for (const w of this.watches) {
      w.position = await this.mesh.peerCursor(w.cursorName)
      w.saved = w.position
    }
    this.pushedSeq = await this.mesh.peerCursor(this.pushCursorName)
    this.sentSeq = this.pushedSeq
    this.savedPushedSeq = this.pushedSeq
    this.localSeq = (await this.mesh.stats()).sequence
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        const nc = await connect(connectOptions(this.o, this.o.name ?? this.mesh.siteId))
        if (this.closed) {
          await nc.close()
          return
        }
        this.nc = nc
        this.watchStatus(nc)
        this.kv = await this.bind(nc)
        break
      } catch (e) {
        if (this.nc) {
          await this.nc.close().catch(() => undefined)
          this.nc = undefined
        }
        this.fail(hubError(e, this.servers, 'the connection'))
        await this.pause(attempt)
      }
    }
    if (this.closed) return
    this.setState('connected')
    this.lastError = undefined
    this.offCommit = this.mesh.onCommit((seq) => {
      this.localSeq = seq
      this.schedulePush(this.applyingFromHub > 0 ? HUB_APPLIED_PUSH_MS : 0)
    })
    for (const w of this.watches) this.running.push(this.watchLoop(w))
    this.startWatchdog()
  }

  private watchStatus(nc: NatsConnection): void {
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect' || s.type === 'reconnecting') this.setState('reconnecting')
        else if (s.type === 'reconnect') {
          this.setState('connected')
          this.lastError = undefined
          // A watch's consumer may have lived on the server that went: start each again from its position.
          this.restartWatches()
          this.schedulePush(0)
        } else if (s.type === 'error') this.fail(hubError(s.error, this.servers, 'a request'))
      }
    })().catch(() => undefined)
  }

  /** Opens the bucket; creates it (one revision per key) when it is missing and these credentials may. */
  private async bind(nc: NatsConnection): Promise<KV> {
    // Requests give up after 2 s: during a cluster's failover a retry on a fresh route beats a long wait.
    const kvm = new Kvm(jetstream(nc, { timeout: 2000 }))
    const stream = `KV_${this.bucketName}`
    let exists = true
    try {
      const jsm = await jetstreamManager(nc, { checkAPI: false })
      await jsm.streams.info(stream)
    } catch (e) {
      if (e instanceof JetStreamApiError && e.code === 10059) exists = false
      else if (!(hubError(e, this.servers, '').code === ErrorCode.HUB_PERMISSION_DENIED)) throw e
    }
    if (!exists) {
      await kvm.create(this.bucketName, { history: 1, replicas: this.o.replicas ?? 1 })
    }
    return kvm.open(this.bucketName, { allow_direct: true })
  }

  // ---- from the hub ---------------------------------------------------------

  private async watchLoop(w: Watch): Promise<void> {
    const kv = this.kv!
    for (let attempt = 0; !this.closed; attempt++) {
      const gen = this.generation
      try {
        const iter = await kv.watch({
          key: w.key,
          ...(w.position > 0 ? { resumeFromRevision: w.position + 1 } : {}),
        })
        w.iter = iter
        if (this.closed) {
          iter.stop()
          return
        }
        const batch: KvWatchEntry[] = []
        // The watch's consumer, as the client keeps it: nothing pending means caught up already.
        const consumer = consumerOf(iter)
        const info = await consumer?.info(true)
        // The client creates the watch's consumer before it subscribes to what the consumer delivers:
        // a change delivered in between is lost (no acknowledgement, no redelivery), and the consumer
        // notices the gap only at its next delivery, which may never come. Checked once the
        // subscription is surely on the server, before the watch counts as caught up.
        if (consumer) await this.checkLostDeliveries(w, iter, consumer)
        if (info && info.num_pending === 0) {
          w.pending = 0
          this.caughtUp(w)
        }
        const spacing = this.o.applySpacingMs ?? DEFAULT_APPLY_SPACING_MS
        let lastApply = Number.NEGATIVE_INFINITY
        let held = false
        for await (const e of iter) {
          attempt = 0
          w.pending = e.delta ?? 0
          w.heardAt = performance.now()
          this.trace?.('deliver', e.key, w.heardAt)
          batch.push(e)
          // Applied once nothing more waits, on the hub or already received here: what queued up
          // while this till was busy goes in one transaction, not one each.
          if (batch.length >= APPLY_BATCH || (w.pending === 0 && iter.getPending() === 0)) {
            // A steady stream (a document every millisecond) would otherwise cost a transaction per
            // document: within `spacing` of the last commit, what comes meanwhile joins this batch.
            const wait = lastApply + spacing - performance.now()
            if (wait > 0 && !held && batch.length < APPLY_BATCH) {
              held = true
              await delay(wait, this.abort.signal).catch(() => undefined)
              if (iter.getPending() > 0) continue
            }
            held = false
            lastApply = performance.now()
            await this.applyBatch(w, batch.splice(0))
            if (w.pending === 0) this.caughtUp(w)
          }
        }
        if (batch.length > 0) await this.applyBatch(w, batch.splice(0))
      } catch (e) {
        if (this.closed) return
        this.fail(hubError(e, this.servers, `reading ${w.key}`))
      }
      if (this.closed || gen !== this.generation) return
      await this.pause(attempt)
    }
  }

  /**
   * Once the server has this watch's subscription (a flush: it handles the
   * connection's messages in order), compares what the consumer delivered
   * with what the watch received; deliveries still on their way get a
   * moment. A watch that lost some starts again from its position: what it
   * receives twice merges as unchanged.
   */
  private async checkLostDeliveries(
    w: Watch,
    iter: QueuedIterator<KvWatchEntry>,
    consumer: WatchConsumer,
  ): Promise<void> {
    const received = () => (iter as unknown as { received: number }).received
    try {
      await this.nc?.flush()
      const delivered = (await consumer.info(false)).delivered.consumer_seq
      for (let wait = 0; delivered > received() && wait < LOST_DELIVERY_WAIT_MS; wait += 10) await delay(10)
      if (delivered <= received() || this.closed || w.iter !== iter) return
      this.logger.info('hub: a watch lost deliveries made before its subscription reached the server; reading again', {
        key: w.key,
        position: w.position,
        delivered,
        received: received(),
      })
      iter.stop()
    } catch {
      // The connection went: the watch starts again with it.
    }
  }

  /** Stops each watch's iterator; its loop starts it again from the position applied. */
  private restartWatches(): void {
    for (const w of this.watches) w.iter?.stop()
  }

  /**
   * In a cluster, checks every few seconds that each watch's consumer still
   * exists on the hub: one lost with its server while this till stays
   * connected to another is otherwise noticed only once the client has
   * missed two of its idle heartbeats (10 s or more).
   *
   * A consumer's info is not free for the hub: nats-server counts the
   * consumer's pending messages over the bucket's keys while holding the
   * stream, and the stream takes no write meanwhile (about 3 ms with 13,000
   * keys). So the watchdog asks only in a cluster (a single server loses a
   * consumer only with the connection, and the reconnect starts the watches
   * again), only about a watch through which nothing came since it last
   * looked, and at a random moment in each period, so that the tills' checks
   * do not all reach the server at once and hold up its writes together.
   */
  private startWatchdog(): void {
    const next = () => {
      if (this.closed) return
      this.watchdog = setTimeout(
        () => {
          this.checkEchoes()
          this.checkConsumers()
          next()
        },
        WATCHDOG_MS * (0.5 + Math.random()),
      )
      this.watchdog.unref()
    }
    next()
  }

  /**
   * A watch that never hands back this till's own acknowledged write, while
   * nothing at all comes through it, has stopped receiving: its consumer
   * delivered to a subscription that did not get it (the client's ordered
   * consumer notices lost deliveries only at its next one, and its
   * heartbeats keep coming). It starts again from its position; what it
   * receives twice merges as unchanged. No request to the server: the
   * till's own writes are the probe.
   */
  private checkEchoes(): void {
    if (this.closed || this.state !== 'connected') return
    const now = performance.now()
    for (const w of this.watches) {
      const echo = w.echo
      if (!echo || !w.iter || w.applying) continue
      if (w.position >= echo.rev) {
        w.echo = undefined
        continue
      }
      if (now - Math.max(echo.at, w.heardAt) < ECHO_WAIT_MS) continue
      w.echo = undefined
      this.logger.warn('hub: a watch stopped receiving (its own write never came back); reading again', {
        key: w.key,
        position: w.position,
        revision: echo.rev,
      })
      w.iter.stop()
    }
  }

  private checkConsumers(): void {
    const info = this.nc?.info
    if (this.closed || this.state !== 'connected' || !(info?.cluster || info?.connect_urls?.length)) return
    const since = this.consumersCheckedAt
    this.consumersCheckedAt = performance.now()
    for (const w of this.watches) {
      const consumer = w.iter && consumerOf(w.iter)
      // Something came through the watch since the last look: its consumer is there.
      if (!consumer || w.heardAt > since) continue
      consumer.info(false).catch(() => {
        if (!this.closed) w.iter?.stop()
      })
    }
  }

  private caughtUp(w: Watch): void {
    if (w.caughtUp) return
    w.caughtUp = true
    if (this.watches.every((x) => x.caughtUp)) {
      this.events.emit('caught-up', {})
      // Pushing waits for the first catch-up: what is known of the hub then spares a read per document.
      this.schedulePush(0)
    }
  }

  private decode(e: KvEntry): RemoteChange | undefined {
    const k = parseKey(this.prefix, e.key)
    if (!k) return undefined
    try {
      const { doc, meta } = e.json<Pick<RemoteChange, 'doc' | 'meta'>>()
      return { collection: k.collection, id: k.id, doc, meta }
    } catch {
      return undefined
    }
  }

  private learn(key: string, rev: number, v: VersionVector): void {
    const k = this.known.get(key)
    if (!k || k.rev < rev) this.known.set(key, { rev, v })
  }

  private async applyBatch(w: Watch, entries: KvWatchEntry[]): Promise<void> {
    if (entries.length === 0) return
    const changes: RemoteChange[] = []
    for (const e of entries) {
      if (e.operation !== 'PUT') continue
      this.counters.received++
      // Our own write coming back: the store holds it already.
      const mine = this.mine.get(e.key)
      if (mine !== undefined && mine <= e.revision) {
        this.mine.delete(e.key)
        if (mine === e.revision) continue
      }
      const c = this.decode(e)
      if (!c || typeof c.meta?.v !== 'object' || c.meta.v === null) {
        this.logger.warn('hub: a document that is not a meshmirror state was skipped', { key: e.key })
        continue
      }
      this.learn(e.key, e.revision, c.meta.v)
      changes.push(c)
    }
    const cursor = entries[entries.length - 1]!.revision
    if (changes.length === 0) {
      // Only this till's own writes came back: nothing to commit now. The position is recorded with
      // the next batch applied, or within a second; after a crash the few echoes read again merge as
      // unchanged.
      w.position = cursor
      this.savePositionSoon(w)
      return
    }
    w.applying = true
    this.applyingFromHub++
    try {
      try {
        const result = await this.mesh.applyRemote(changes, { from: w.cursorName, cursor })
        this.skipHubStates(result)
      } catch (e) {
        if ((e as MeshmirrorError).code !== ErrorCode.INVALID_CHANGE) throw e
        // One bad document must not hold back the rest: apply them one by one, skipping the bad.
        for (const c of changes) {
          try {
            await this.mesh.applyRemote([c])
          } catch (err) {
            this.logger.warn('hub: an invalid document was skipped', {
              collection: c.collection,
              id: c.id,
              error: (err as Error).message,
            })
          }
        }
        await this.mesh.applyRemote([], { from: w.cursorName, cursor })
      }
      w.position = cursor
      w.saved = cursor
      if (this.trace) {
        const at = performance.now()
        for (const e of entries) this.trace('apply', e.key, at)
      }
    } finally {
      w.applying = false
      this.applyingFromHub--
    }
  }

  /**
   * A commit that stored the hub's states exactly as they came holds nothing
   * the hub lacks: when it directly follows what was read for pushing, the
   * push moves past it without reading it back (a store read and two JSON
   * parses per document, for every document every till receives).
   */
  private skipHubStates(result: ApplyRemoteResult): void {
    const { after, upTo } = result.sequences
    if (upTo === after || result.asReceived !== result.applied) return
    if (this.pushing || this.pushFailure || this.sentSeq !== after) return
    this.dispatch([], upTo)
  }

  private savePositionSoon(w: Watch): void {
    if (w.saveTimer || this.closed) return
    w.saveTimer = setTimeout(() => {
      w.saveTimer = undefined
      void this.savePosition(w)
    }, SAVE_PUSHED_MS)
  }

  /** Records a position reached without a commit. A batch being applied records a later one itself. */
  private async savePosition(w: Watch): Promise<void> {
    const cursor = w.position
    if (w.applying || cursor <= w.saved) return
    try {
      // Queued behind any batch already committing, and before any batch applied after it.
      await this.mesh.applyRemote([], { from: w.cursorName, cursor })
      w.saved = Math.max(w.saved, cursor)
    } catch {
      // The store is closing: the next run reads the few echoes since the last position again.
    }
  }

  // ---- to the hub -----------------------------------------------------------

  /** Pushes in `ms` (0: right after this turn's commits), unless a push is due sooner. */
  private schedulePush(ms: number): void {
    if (this.closed || !this.kv || this.pushImmediate) return
    if (!this.watches.every((w) => w.caughtUp)) return
    const due = performance.now() + ms
    if (this.pushTimer) {
      if (this.pushDue <= due) return
      clearTimeout(this.pushTimer)
      this.pushTimer = undefined
    }
    // A timer would add a millisecond or more to every local write.
    if (ms <= 0)
      this.pushImmediate = setImmediate(() => {
        this.pushImmediate = undefined
        void this.push()
      })
    else {
      this.pushDue = due
      this.pushTimer = setTimeout(() => {
        this.pushTimer = undefined
        void this.push()
      }, ms)
    }
  }

  private cancelPush(): void {
    clearTimeout(this.pushTimer)
    clearImmediate(this.pushImmediate)
    this.pushTimer = undefined
    this.pushImmediate = undefined
  }

  /**
   * Reads the local changes not yet handed to writes and starts their
   * writes. It does not wait for the hub's acknowledgements: writes of
   * different documents overlap (up to `concurrency` at once), those of one
   * document go one after the other, and `pushedSeq` moves as the oldest
   * ones are acknowledged.
   */
  private async push(): Promise<void> {
    if (this.pushing) {
      this.pushAgain = true
      return
    }
    this.pushing = true
    try {
      do {
        this.pushAgain = false
        for (;;) {
          if (this.closed || this.pushFailure) return
          if (this.queued >= PUSH_AHEAD) {
            // Enough read ahead: writes ending read on (`writeKey`).
            this.pushStalled = true
            return
          }
          const epoch = this.pushEpoch
          const chunk = await this.mesh.changesFor({}, this.sentSeq, PUSH_CHUNK)
          if (epoch !== this.pushEpoch) {
            // A failure reset the writes meanwhile; its retry (scheduled) reads everything from `pushedSeq`.
            this.pushAgain = false
            return
          }
          if (this.closed) return
          this.dispatch(chunk.changes, chunk.cursor)
          if (chunk.complete) break
        }
      } while (this.pushAgain)
    } catch (e) {
      if (this.closed) return
      this.fail(hubError(e, this.servers, 'a write'))
      this.pushing = false
      this.schedulePush(backoffMs(this.pushFailures++, { initialMs: 250, maxMs: 5000, jitter: true }))
    } finally {
      this.pushing = false
    }
  }

  /** Queues the writes of a range of local changes. */
  private dispatch(changes: RemoteChange[], upTo: number): void {
    // One count for the range itself, released below: a range with nothing to write is done at once.
    const slot: PushSlot = { upTo, left: 1 }
    this.slots.push(slot)
    this.sentSeq = upTo
    for (const c of changes) {
      const key = this.keyOf(c)
      if (!key) continue
      slot.left++
      this.queued++
      const w: PushWrite = { c, slot }
      if (this.writing.has(key)) {
        // A write of this document is queued or in flight: this later state (which holds every
        // write of an earlier one) goes next, in place of any other waiting.
        const waiting = this.writing.get(key)
        if (waiting) this.done(waiting)
        this.writing.set(key, w)
      } else {
        this.writing.set(key, null)
        this.ready.push({ key, w })
      }
    }
    this.release(slot)
    this.pump()
  }

  private pump(): void {
    const limit = this.o.concurrency ?? DEFAULT_CONCURRENCY
    while (this.active < limit && this.ready.length > 0 && !this.pushFailure && !this.closed) {
      const { key, w } = this.ready.shift()!
      this.active++
      void this.writeKey(key, w)
    }
  }

  /** Writes a document, then the later state of it that came meanwhile, if any. */
  private async writeKey(key: string, first: PushWrite): Promise<void> {
    try {
      for (let w: PushWrite | null = first; w; ) {
        await this.pushOne(w.c, key)
        if (this.closed || this.pushFailure) return
        this.done(w)
        this.pushFailures = 0
        w = this.writing.get(key) ?? null
        if (w) this.writing.set(key, null)
        else this.writing.delete(key)
      }
    } catch (e) {
      this.pushFailure ??= { error: e }
    } finally {
      this.active--
      if (this.pushFailure) {
        if (this.active === 0) this.recover()
      } else if (!this.closed) {
        this.pump()
        if (this.pushStalled && this.queued < PUSH_AHEAD / 2) {
          this.pushStalled = false
          this.schedulePush(0)
        }
      }
    }
  }

  private done(w: PushWrite): void {
    this.queued--
    this.release(w.slot)
  }

  /** Moves `pushedSeq` over the ranges all of whose writes are done. */
  private release(slot: PushSlot): void {
    if (--slot.left > 0) return
    let moved = false
    while (this.slots.length > 0 && this.slots[0]!.left === 0) {
      this.pushedSeq = this.slots.shift()!.upTo
      moved = true
    }
    if (moved) this.savePushedSoon()
  }

  /** After a failed write, once none is in flight: drops what was queued and pushes again from `pushedSeq`. */
  private recover(): void {
    const failure = this.pushFailure!
    this.pushFailure = undefined
    this.pushEpoch++
    this.slots.length = 0
    this.ready.length = 0
    this.writing.clear()
    this.queued = 0
    this.pushStalled = false
    this.sentSeq = this.pushedSeq
    if (this.closed) return
    this.fail(hubError(failure.error, this.servers, 'a write'))
    this.cancelPush()
    this.schedulePush(backoffMs(this.pushFailures++, { initialMs: 250, maxMs: 5000, jitter: true }))
  }

  /**
   * Records how far this till has pushed, at most once a second: pushing
   * again after a crash is harmless (the hub's state covers it and nothing
   * is written), a write transaction per push is not free.
   */
  private savePushedSoon(): void {
    if (this.saveTimer || this.closed) return
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined
      void this.savePushed()
    }, SAVE_PUSHED_MS)
  }

  private async savePushed(): Promise<void> {
    const seq = this.pushedSeq
    if (seq <= this.savedPushedSeq) return
    try {
      await this.mesh.applyRemote([], { from: this.pushCursorName, cursor: seq })
      this.savedPushedSeq = Math.max(this.savedPushedSeq, seq)
    } catch {
      // The store is closing: the next run pushes from the last position saved.
    }
  }

  /** The watch that receives `key` (a document key of this prefix). */
  private watchOf(key: string): Watch | undefined {
    if (this.watches.length === 1) return this.watches[0]
    const filter = `${key.slice(0, key.lastIndexOf('.'))}.*`
    return this.watches.find((w) => w.key === filter)
  }

  /** The key a change goes to, or undefined when this till does not mirror it to the hub. */
  private keyOf(c: RemoteChange): string | undefined {
    if (!this.collections) return docKey(this.prefix, c.collection, UNSCOPED, c.id)
    const spec = this.collections.get(c.collection)
    if (!spec) return undefined
    if (spec.fields.length === 0) return docKey(this.prefix, c.collection, UNSCOPED, c.id)
    if (c.doc !== null) {
      const token = scopeToken(
        spec.fields,
        spec.fields.map((f) => c.doc![f] as FilterScalar),
      )
      // Another scope's document: not this till's to send.
      if (token !== spec.token) return undefined
    }
    return docKey(this.prefix, c.collection, spec.token, c.id)
  }

  /**
   * Writes one document's state on top of the hub's revision of it. When the
   * hub holds writes this till lacks, they are merged into the local store
   * first; the merged state is written when its commit comes round.
   */
  private async pushOne(c: RemoteChange, key: string): Promise<void> {
    const kv = this.kv!
    const payload = JSON.stringify({ doc: c.doc, meta: c.meta })
    for (let attempt = 0; ; attempt++) {
      if (this.closed) return
      let known = this.known.get(key)
      let entry: KvEntry | null = null
      // A document the hub has not shown this till is most often new: try creating it before reading it.
      if (attempt > 0) {
        entry = await kv.get(key)
        if (entry && entry.operation === 'PUT') {
          const hub = this.decode(entry)
          if (hub) this.learn(key, entry.revision, hub.meta.v)
          known = this.known.get(key)
        } else known = undefined
      }
      if (known && covers(known.v, c.meta.v)) return
      try {
        let rev: number
        this.trace?.('publish', key, performance.now())
        if (!known) rev = await kv.create(key, payload)
        else if (covers(c.meta.v, known.v)) rev = await kv.update(key, payload, known.rev)
        else {
          // Concurrent writes: merge the hub's state into ours.
          entry ??= await kv.get(key)
          const hub = entry && entry.operation === 'PUT' ? this.decode(entry) : undefined
          if (hub) await this.mesh.applyRemote([hub])
          return
        }
        this.trace?.('ack', key, performance.now())
        this.mine.set(key, rev)
        const w = this.watchOf(key)
        if (w && !w.echo) w.echo = { rev, at: performance.now() }
        this.learn(key, rev, c.meta.v)
        this.counters.pushed++
        return
      } catch (e) {
        if (!(e instanceof JetStreamApiError) || (e.code !== 10071 && e.code !== 10164)) throw e
        // Someone wrote the document since we read it: read again and merge.
        this.counters.retries++
        this.known.delete(key)
      }
    }
  }

  // ---- lifecycle --------------------------------------------------------------

  close(): Promise<void> {
    if (this.closed) return Promise.resolve()
    this.closed = true
    this.generation++
    this.abort.abort()
    this.offCommit?.()
    this.cancelPush()
    clearTimeout(this.watchdog)
    for (const w of this.watches) w.iter?.stop()
    this.state = 'closed'
    this.events.emit('state', { state: 'closed' })
    const nc = this.nc
    return (async () => {
      await Promise.allSettled(this.running)
      // Writes in flight finish; the connection closes under them otherwise.
      for (let i = 0; (this.pushing || this.active > 0) && i < 100; i++) await delay(20)
      clearTimeout(this.saveTimer)
      await this.savePushed()
      for (const w of this.watches) {
        clearTimeout(w.saveTimer)
        await this.savePosition(w)
      }
      await nc?.close().catch(() => undefined)
      this.events.clear()
    })()
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }
}
