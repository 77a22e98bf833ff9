import { createHash } from 'node:crypto'
import type { Document, JsonValue } from '../mesh/document.js'
import { type CompiledScope, compileScope } from '../mesh/filter.js'
import { canonicalJson } from '../mesh/json.js'
import { matches } from '../mesh/match.js'
import type { Observer } from '../mesh/mesh-store.js'
import type { Filter, Scope } from '../mesh/query.js'
import { Mutex } from '../util/mutex.js'
import { receives, type SyncAdapter, type SyncContext, sends } from './adapter.js'

/**
 * One registered adapter at run time: its current scope, its observer, and
 * the lock that makes everything received for it (observer deliveries,
 * catch-up pages, reconciliations) enter the apply queue in the order it was
 * read from the mesh.
 */
export class AdapterBinding {
  readonly model: string
  readonly collection: string
  readonly sends: boolean
  private readonly lock = new Mutex()
  /** The current scope's filter, or null when nothing is received in this context. */
  filter: Filter | null = null
  private compiled: CompiledScope | undefined
  scopeKey = 'none'
  observer: Observer | undefined
  /**
   * Where the next read of the mesh's changes starts (null: the beginning).
   * Everything before it has been taken in (queued for writing). Undefined
   * until sync starts.
   */
  cursor: string | null | undefined
  /**
   * Whether the cursor may be stored. It may when the reads started from the
   * stored cursor; not with `skipInitialFetch`, so that the next start
   * without it still finds what was skipped.
   */
  persistCursor = false

  constructor(readonly adapter: SyncAdapter) {
    this.model = adapter.model
    this.collection = adapter.collection
    this.sends = sends(adapter)
  }

  /** The context this adapter sees: the coordinator's, with its overrides on top. */
  context(base: SyncContext): SyncContext {
    return this.adapter.contextOverrides ? { ...base, ...this.adapter.contextOverrides } : base
  }

  /** Recomputes the scope for a context. Returns true when it changed. */
  updateScope(base: SyncContext): boolean {
    const filter = receives(this.adapter) ? (this.adapter.observerQuery?.(this.context(base)) ?? null) : null
    const key = filter === null ? 'none' : canonicalJson(filter as unknown as JsonValue)
    if (key === this.scopeKey) return false
    this.compiled = filter === null ? undefined : compileScope({ collection: this.collection, filter })
    this.filter = filter
    this.scopeKey = key
    this.cursor = undefined
    return true
  }

  get receives(): boolean {
    return this.filter !== null
  }

  get scope(): Scope {
    return this.filter === null ? { collection: this.collection } : { collection: this.collection, filter: this.filter }
  }

  /** Whether a remote document may be applied here (the adapter's rule, or the scope). */
  accepts(doc: Document, base: SyncContext): boolean {
    if (this.adapter.shouldApplyRemote) return this.adapter.shouldApplyRemote(doc, this.context(base))
    return this.compiled !== undefined && matches(this.compiled.filter, doc)
  }

  /** Checkpoint key of the mesh cursor for the current scope. */
  get cursorKey(): string {
    const digest = createHash('sha1').update(this.scopeKey).digest('base64url').slice(0, 16)
    return `cursor:${this.model}:${digest}`
  }

  get seedKey(): string {
    return `seeded:${this.model}`
  }

  run<T>(fn: () => Promise<T>): Promise<T> {
    return this.lock.run(fn)
  }

  /** True while something received for this adapter is being taken in. */
  get busy(): boolean {
    return this.lock.pending > 0
  }
}
