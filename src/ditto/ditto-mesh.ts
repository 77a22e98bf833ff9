import { hostname } from 'node:os'
import type { Ditto } from '@dittolive/ditto'
import { ClosedError, ErrorCode, LockHeldError, type LockHolder, MeshmirrorError } from '../errors.js'
import { type Logger, silentLogger } from '../logger.js'
import type { DocIdInput, Document, DocumentInput } from '../mesh/document.js'
import { compileQuery, compileScope } from '../mesh/filter.js'
import { matches } from '../mesh/match.js'
import type {
  ChangeCursor,
  ChangeSet,
  ChangesSinceOptions,
  MeshStoreEvents,
  MeshWriter,
  ObserveOptions,
  Observer,
  ObserverListener,
  UpsertOptions,
  WriteResult,
} from '../mesh/mesh-store.js'
import type { Query, Scope } from '../mesh/query.js'
import { assertCollection, DEFAULT_MAX_DOC_BYTES, parseFieldPath } from '../mesh/validate.js'
import { Emitter } from '../util/emitter.js'
import { ChangeHistory } from './change-history.js'
import type { ChangeLog } from './change-log.js'
import { DittoWriter, type WriteNotes, type WriterContext } from './ditto-writer.js'
import { fromDitto } from './doc-codec.js'
import { ident, pathExpr, selectScope } from './dql.js'
import { closeOnExit, KeepAlive } from './keep-alive.js'
import { LiveQuery } from './live-query.js'
import { activate, applyTransports } from './open-ditto.js'
import type { DittoMeshOptions } from './options.js'
import { backendError } from './sdk.js'
import type { DittoMesh, DittoMeshStats, DittoPresence } from './types.js'

/**
 * A {@link DittoMesh}: the mesh port on an open Ditto instance.
 *
 * It leaves out the port's optional conflict list (`conflicts`,
 * `conflictCount`): Ditto merges copies inside its SDK and exposes only the
 * merged document, neither the losing version nor which write saw which.
 */
export class DittoMeshStore implements DittoMesh {
  readonly siteId: string
  private readonly ctx: WriterContext
  private readonly keepAlive = new KeepAlive()
  private readonly observers = new Set<LiveQuery>()
  private readonly events: Emitter<MeshStoreEvents>
  private readonly inFlight = new Set<Promise<unknown>>()
  private readonly logger: Logger
  private readonly unregisterExit: () => void
  private readonly licensed: boolean
  private observerErrors = 0
  private closing: Promise<void> | undefined
  private readonly history: ChangeHistory
  private readonly closedListeners: (() => void)[] = []

  constructor(
    private readonly sdk: Ditto,
    readonly dir: string,
    private readonly log: ChangeLog,
    options: DittoMeshOptions,
  ) {
    this.siteId = log.site
    this.history = new ChangeHistory(log, {
      collection: (c) => this.readCollection(c),
      byIds: (c, ids) => this.reader().readMany(c, ids),
    })
    this.logger = options.logger ?? silentLogger
    this.events = new Emitter(this.logger)
    const counters = log.counterFields()
    for (const [collection, fields] of Object.entries(options.counterFields ?? {})) {
      const set = counters.get(collection) ?? new Set()
      for (const f of fields) set.add(f)
      counters.set(collection, set)
    }
    this.ctx = {
      maxDocumentBytes: options.maxDocumentBytes ?? DEFAULT_MAX_DOC_BYTES,
      counters,
      removeWith: options.removeWith ?? 'delete',
    }
    applyTransports(sdk, options.transports)
    this.licensed = activate(sdk, options.licenseToken ?? process.env.DITTO_LICENSE_TOKEN)
    if (this.licensed && options.sync !== false) this.startSync()
    this.unregisterExit = closeOnExit(this)
  }

  /**
   * The Ditto instance. Writes made through it bypass the change log, so
   * once it was handed out every `changesSince` reconciles (as with sync).
   */
  get ditto(): Ditto {
    this.history.outsideWrites = true
    return this.sdk
  }

  // ---- writes ---------------------------------------------------------------

  upsert(collection: string, docs: readonly DocumentInput[], options?: UpsertOptions): Promise<WriteResult> {
    return this.write((w) => w.upsert(collection, docs, options))
  }

  remove(collection: string, ids: readonly DocIdInput[]): Promise<WriteResult> {
    return this.write((w) => w.remove(collection, ids))
  }

  /** Removes documents from this device only (no tombstone; they come back if a peer still has them). */
  evict(collection: string, ids: readonly DocIdInput[]): Promise<WriteResult> {
    return this.write((w) =>
      new DittoWriter(w.executor, { ...this.ctx, removeWith: 'evict' }, w.notes).remove(collection, ids),
    )
  }

  increment(collection: string, id: DocIdInput, field: string, by: number): Promise<number> {
    return this.write((w) => w.increment(collection, id, field, by))
  }

  transaction<T>(fn: (tx: MeshWriter) => Promise<T>): Promise<T> {
    return this.write((w) => fn(w))
  }

  // ---- reads ----------------------------------------------------------------

  get(collection: string, id: DocIdInput): Promise<Document | undefined> {
    return this.read(() => this.reader().get(collection, id))
  }

  find(query: Query): Promise<Document[]> {
    return this.read(() => this.reader().find(query))
  }

  count(scope: Scope): Promise<number> {
    return this.read(async () => {
      const compiled = compileScope(scope)
      if (compiled.filter.kind === 'true') {
        const res = await this.sdk.store.execute(`SELECT COUNT(*) AS n FROM ${ident(compiled.collection)}`)
        return Number(res.items[0]?.value.n ?? 0)
      }
      const { text, args } = selectScope(compiled)
      const res = await this.sdk.store.execute(text, args)
      return res.items.filter((i) => matches(compiled.filter, fromDitto(i.value))).length
    })
  }

  createIndex(collection: string, field: string): Promise<void> {
    return this.read(async () => {
      assertCollection(collection)
      const path = parseFieldPath(field)
      await this.sdk.store.execute(
        `CREATE INDEX IF NOT EXISTS ${ident(`mm_${collection}_${field}`)} ON ${ident(collection)} (${pathExpr(path)})`,
      )
    })
  }

  observe(query: Query, listener: ObserverListener, options: ObserveOptions = {}): Observer {
    this.assertOpen()
    const compiled = compileQuery(query)
    const live = new LiveQuery(compiled, query, listener, options, {
      store: this.sdk.store,
      sync: this.sdk.sync,
      find: (q) => this.find(q),
      onError: (error, q) => {
        this.observerErrors++
        this.logger.warn('observer listener failed', { collection: q.collection, error: String(error) })
        this.events.emit('observer-error', { error, query: q })
      },
      onCancel: (l) => {
        if (this.observers.delete(l)) this.keepAlive.release()
      },
    })
    this.observers.add(live)
    this.keepAlive.retain()
    return live
  }

  // ---- change history -------------------------------------------------------

  /**
   * Answered from the change log: documents get a local sequence number when
   * a local write changes them, or when a reconcile (a full read of the
   * collection compared with stored content hashes) finds them changed,
   * new or gone. The collection is reconciled on its first call in a
   * session, and on every call once sync has run or the raw `ditto`
   * handle was taken (changes then arrive without passing through this
   * store).
   */
  changesSince(cursor: ChangeCursor | null, scope: Scope, options: ChangesSinceOptions = {}): Promise<ChangeSet> {
    return this.read(() => this.history.since(cursor, scope, options))
  }

  currentCursor(): Promise<ChangeCursor> {
    return this.read(async () => this.history.current())
  }

  // ---- sync -----------------------------------------------------------------

  /** Starts sync. Needs a license token (`LICENSE_REQUIRED` otherwise). Keeps the process alive until stopped. */
  startSync(): void {
    this.assertOpen()
    if (!this.licensed) {
      throw new MeshmirrorError(
        ErrorCode.LICENSE_REQUIRED,
        'Ditto sync needs an offline license token: pass licenseToken or set DITTO_LICENSE_TOKEN.',
      )
    }
    try {
      this.sdk.sync.start()
      this.history.outsideWrites = true
    } catch (error) {
      throw backendError('start sync', error)
    }
  }

  subscribe(scope: Scope): () => void {
    this.assertOpen()
    const { text, args } = selectScope(compileScope(scope))
    const sub = this.sdk.sync.registerSubscription(text, args)
    return () => sub.cancel()
  }

  stopSync(): void {
    if (this.sdk.isClosed) return
    this.sdk.sync.stop()
  }

  presence(): DittoPresence {
    this.assertOpen()
    const graph = this.sdk.presence.graph
    return {
      syncActive: this.sdk.sync.isActive,
      licensed: this.licensed,
      peers: graph.remotePeers.map((p) => ({ peerKey: p.peerKey, deviceName: p.deviceName })),
    }
  }

  // ---- diagnostics and lifecycle ---------------------------------------------

  stats(): Promise<DittoMeshStats> {
    return this.read(async () => {
      // `system:collections` is not always complete (seen empty right after
      // writes), so the change log's collections are counted too.
      const res = await this.sdk.store.execute('SELECT * FROM system:collections')
      const names = new Set(this.log.collections())
      for (const item of res.items) names.add(String((item.value as { name?: unknown }).name ?? ''))
      let documents = 0
      for (const name of names) {
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name) || name.startsWith('__')) continue
        const n = await this.sdk.store.execute(`SELECT COUNT(*) AS n FROM ${ident(name)}`)
        documents += Number(n.items[0]?.value.n ?? 0)
      }
      return {
        documents,
        tombstones: this.log.tombstones(),
        observers: this.observers.size,
        observerErrors: this.observerErrors,
        peers: this.sdk.presence.graph.remotePeers.length,
        syncActive: this.sdk.sync.isActive ? 1 : 0,
      }
    })
  }

  on<E extends keyof MeshStoreEvents>(event: E, listener: (payload: MeshStoreEvents[E]) => void): () => void {
    return this.events.on(event, listener)
  }

  /** Waits for operations in flight, cancels observers, stops sync, closes Ditto and the change log. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.allSettled([...this.inFlight])
      for (const live of [...this.observers]) live.cancel()
      try {
        if (!this.sdk.isClosed) {
          if (this.sdk.sync.isActive) this.sdk.sync.stop()
          await this.sdk.close()
        }
      } catch (error) {
        this.logger.error('closing Ditto failed', { dir: this.dir, error: String(error) })
        throw backendError(`close ${this.dir}`, error)
      } finally {
        this.log.close()
        this.keepAlive.dispose()
        this.unregisterExit()
        for (const fn of this.closedListeners) fn()
      }
    })()
    return this.closing
  }

  /** Resolves once a close that began has finished; throws `LOCK_HELD` while the store is open. */
  async closedOrOpen(): Promise<void> {
    if (!this.closing) {
      throw new LockHeldError(this.dir, ownHolder(), 0)
    }
    await this.closing.catch(() => {})
  }

  /** Calls `fn` once the store has closed. */
  onClosed(fn: () => void): void {
    this.closedListeners.push(fn)
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  // ---- internals ------------------------------------------------------------

  private assertOpen(): void {
    if (this.closing) throw new ClosedError(`The Ditto mesh store in ${this.dir}`)
  }

  private reader(): DittoWriter {
    return new DittoWriter(this.sdk.store, this.ctx)
  }

  private track<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closing) return Promise.reject(new ClosedError(`The Ditto mesh store in ${this.dir}`))
    const p = this.keepAlive.hold(fn)
    this.inFlight.add(p)
    const done = () => this.inFlight.delete(p)
    p.then(done, done)
    return p
  }

  private read<T>(fn: () => Promise<T>): Promise<T> {
    return this.track(async () => {
      try {
        return await fn()
      } catch (error) {
        throw error instanceof MeshmirrorError ? error : backendError('read', error)
      }
    })
  }

  /**
   * Runs writes in one Ditto transaction. Writes wait until every observer
   * has its first result, so an observer's baseline never includes a write
   * made after `observe()` returned. The change log is updated after commit.
   */
  private write<T>(fn: (w: DittoWriter) => Promise<T>): Promise<T> {
    return this.track(async () => {
      await Promise.all([...this.observers].map((o) => o.ready))
      let notes: WriteNotes | undefined
      let value: T
      try {
        const boxed = await this.sdk.store.transaction(async (tx) => {
          const w = new DittoWriter(tx, this.ctx)
          notes = w.notes
          // Boxed: a bare 'commit' or 'rollback' returned by fn would be taken as an instruction.
          return { value: await fn(w) }
        })
        value = boxed.value
      } catch (error) {
        throw error instanceof MeshmirrorError || !isDittoFailure(error) ? error : backendError('write', error)
      }
      if (notes) {
        this.log.noteLocal(notes.changes)
        for (const { collection, field } of notes.counterFields) {
          const set = this.ctx.counters.get(collection) ?? new Set()
          if (!set.has(field)) {
            set.add(field)
            this.ctx.counters.set(collection, set)
            this.log.addCounterField(collection, field)
          }
        }
      }
      return value
    })
  }

  private async readCollection(collection: string): Promise<Map<string, Document>> {
    const res = await this.sdk.store.execute(`SELECT * FROM ${ident(collection)}`)
    const out = new Map<string, Document>()
    for (const item of res.items) {
      const doc = fromDitto(item.value)
      out.set(doc._id, doc)
    }
    return out
  }
}

function ownHolder(): LockHolder {
  return {
    pid: process.pid,
    hostname: hostname(),
    command: `this process (${process.argv.slice(1).join(' ')}); share it with openDittoMesh, or close it first`,
    acquiredAt: new Date().toISOString(),
    alive: true,
  }
}

function isDittoFailure(error: unknown): boolean {
  return (error as { constructor?: { name?: string } })?.constructor?.name === 'DittoError'
}
