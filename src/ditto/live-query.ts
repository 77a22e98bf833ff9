import type { QueryResult, Store, StoreObserver, Sync, SyncSubscription } from '@dittolive/ditto'
import type { Document } from '../mesh/document.js'
import type { CompiledQuery } from '../mesh/filter.js'
import { applyQueryInMemory } from '../mesh/match.js'
import type { ObserveOptions, Observer, ObserverChange, ObserverListener } from '../mesh/mesh-store.js'
import type { Query } from '../mesh/query.js'
import { diffResults, isEmptyDiff, type ResultIndex } from '../mesh/result-diff.js'
import { fromDitto } from './doc-codec.js'
import { selectScope } from './dql.js'

export interface LiveQueryDeps {
  store: Store
  /** Peers are asked for what an observer watches (a sync subscription on the same query). */
  sync: Sync
  /** Reads the whole current result (for `ObserverChange.results`). */
  find(query: Query): Promise<Document[]>
  onError(error: unknown, query: Query): void
  onCancel(live: LiveQuery): void
}

/**
 * A port observer on a Ditto store observer. Ditto delivers the full result
 * of the query each time; this keeps the previous result (content as
 * canonical JSON, by id) and delivers the difference. The next Ditto
 * delivery is requested (`signalNext`) only after the listener finished, so
 * Ditto coalesces what was committed meanwhile into one result.
 */
export class LiveQuery implements Observer {
  readonly ready: Promise<void>
  private readonly observer: StoreObserver
  private readonly subscription: SyncSubscription
  private previous: ResultIndex = new Map()
  private first = true
  private cancelled = false
  private resolveReady!: () => void

  constructor(
    private readonly compiled: CompiledQuery,
    private readonly query: Query,
    private readonly listener: ObserverListener,
    private readonly options: ObserveOptions,
    private readonly deps: LiveQueryDeps,
  ) {
    this.ready = new Promise((resolve) => {
      this.resolveReady = resolve
    })
    const { text, args } = selectScope(compiled)
    this.subscription = deps.sync.registerSubscription(text, args)
    this.observer = deps.store.registerObserverWithSignalNext(text, (result, next) => this.receive(result, next), args)
  }

  cancel(): void {
    if (this.cancelled) return
    this.cancelled = true
    this.observer.cancel()
    this.subscription.cancel()
    this.resolveReady()
    this.deps.onCancel(this)
  }

  [Symbol.dispose](): void {
    this.cancel()
  }

  private receive(result: QueryResult, next: () => unknown): void {
    if (this.cancelled) return
    let docs: Document[]
    try {
      docs = applyQueryInMemory(
        this.compiled,
        result.items.map((i) => fromDitto(i.value)),
      )
    } catch (error) {
      this.deps.onError(error, this.query)
      next()
      return
    }
    const { diff: change, next: index } = diffResults(this.previous, docs)
    this.previous = index
    const initial = this.first
    this.first = false
    const deliver = initial ? this.options.initial === true : !isEmptyDiff(change)
    if (!deliver) {
      if (initial) this.resolveReady()
      next()
      return
    }
    this.run({ ...change, initial, results: () => this.deps.find(this.query) }).finally(() => {
      if (initial) this.resolveReady()
      if (!this.cancelled) next()
    })
  }

  private async run(change: ObserverChange): Promise<void> {
    try {
      await this.listener(change)
    } catch (error) {
      try {
        this.options.onError?.(error)
      } finally {
        this.deps.onError(error, this.query)
      }
    }
  }
}
