import type { Document } from '../mesh/document.js'
import { type CompiledQuery, compileQuery } from '../mesh/filter.js'
import { jsonEqual } from '../mesh/json.js'
import { matches } from '../mesh/match.js'
import type { ObserveOptions, Observer, ObserverChange, ObserverListener, RemovedDocument } from '../mesh/mesh-store.js'
import type { Query } from '../mesh/query.js'
import { diffResults, indexResult, isEmptyDiff, type ResultIndex } from '../mesh/result-diff.js'

/** One document's change in a commit, as observers see it. */
export interface CommitEntry {
  collection: string
  id: string
  before: Document | null
  after: Document | null
}

export interface ObserverHubDeps {
  /** Runs a query against committed data, synchronously. */
  runQuery(query: CompiledQuery): Document[]
  /** Reports a listener failure. */
  onError(error: unknown, query: Query): void
}

/** Live queries of one store: receives commits, delivers diffs. */
export class ObserverHub {
  private readonly byCollection = new Map<string, Set<LiveQuery>>()
  private count = 0

  constructor(private readonly deps: ObserverHubDeps) {}

  /** True when some observer watches `collection` (commits then carry `before`/`after`). */
  watches(collection: string): boolean {
    return (this.byCollection.get(collection)?.size ?? 0) > 0
  }

  get size(): number {
    return this.count
  }

  register(query: Query, listener: ObserverListener, options: ObserveOptions = {}): Observer {
    const compiled = compileQuery(query)
    const live = new LiveQuery(compiled, query, listener, options, this.deps, () => this.unregister(live))
    let set = this.byCollection.get(compiled.collection)
    if (!set) {
      set = new Set()
      this.byCollection.set(compiled.collection, set)
    }
    set.add(live)
    this.count++
    return live
  }

  private unregister(live: LiveQuery): void {
    const set = this.byCollection.get(live.collection)
    if (set?.delete(live)) this.count--
    if (set && set.size === 0) this.byCollection.delete(live.collection)
  }

  /** Hands a committed batch to the observers of each touched collection. */
  publish(entries: readonly CommitEntry[]): void {
    for (const e of entries) {
      const set = this.byCollection.get(e.collection)
      if (set) for (const live of set) live.push(e)
    }
  }

  /** Cancels every observer. */
  cancelAll(): void {
    for (const set of [...this.byCollection.values()]) for (const live of [...set]) live.cancel()
  }
}

class LiveQuery implements Observer {
  readonly collection: string
  readonly ready: Promise<void>
  private pending = new Map<string, { before: Document | null; after: Document | null }>()
  private scheduled = false
  private delivering = false
  private cancelled = false
  /** For queries with limit/offset: the current result, to diff against. */
  private window: ResultIndex | undefined
  private markReady!: () => void

  constructor(
    private readonly compiled: CompiledQuery,
    private readonly query: Query,
    private readonly listener: ObserverListener,
    private readonly options: ObserveOptions,
    private readonly deps: ObserverHubDeps,
    private readonly detach: () => void,
  ) {
    this.collection = compiled.collection
    this.ready = new Promise((resolve) => {
      this.markReady = resolve
    })
    const windowed = compiled.limit !== undefined || compiled.offset > 0
    // Read synchronously: every commit after this point reaches `push`.
    const snapshot = options.initial || windowed ? deps.runQuery(compiled) : undefined
    if (windowed) this.window = indexResult(snapshot ?? [])
    if (options.initial) {
      this.delivering = true
      setImmediate(() => void this.deliver(this.change(true, snapshot ?? [], [], [])))
    } else {
      this.markReady()
    }
  }

  push(entry: CommitEntry): void {
    if (this.cancelled) return
    const prev = this.pending.get(entry.id)
    if (prev) prev.after = entry.after
    else this.pending.set(entry.id, { before: entry.before, after: entry.after })
    this.schedule()
  }

  private schedule(): void {
    if (this.scheduled || this.delivering || this.cancelled) return
    this.scheduled = true
    // Right after the commit that made the change (its entries are all pushed by then), not a turn
    // of the event loop later: a received change reaches its observers without waiting for I/O.
    // A promise reaction, not queueMicrotask: the same turn, without the async resource Node makes for each call.
    void Promise.resolve().then(() => {
      this.scheduled = false
      this.flush()
    })
  }

  private flush(): void {
    if (this.cancelled || this.pending.size === 0) return
    const pending = this.pending
    this.pending = new Map()
    const change = this.window ? this.diffWindow() : this.diffEntries(pending)
    if (isEmptyDiff(change)) return
    this.delivering = true
    void this.deliver(change)
  }

  private diffEntries(pending: Map<string, { before: Document | null; after: Document | null }>): ObserverChange {
    const inserted: Document[] = []
    const updated: Document[] = []
    const removed: RemovedDocument[] = []
    const f = this.compiled.filter
    for (const [id, { before, after }] of pending) {
      const was = before !== null && matches(f, before)
      const is = after !== null && matches(f, after)
      if (is && !was) inserted.push(after)
      else if (is && was && !jsonEqual(before, after)) updated.push(after)
      else if (was && !is) removed.push({ _id: id, previous: before })
    }
    return this.change(false, inserted, updated, removed)
  }

  private diffWindow(): ObserverChange {
    const { diff, next } = diffResults(this.window ?? new Map(), this.deps.runQuery(this.compiled))
    this.window = next
    return this.change(false, diff.inserted, diff.updated, diff.removed)
  }

  private change(
    initial: boolean,
    inserted: Document[],
    updated: Document[],
    removed: RemovedDocument[],
  ): ObserverChange {
    return { initial, inserted, updated, removed, results: async () => this.deps.runQuery(this.compiled) }
  }

  private async deliver(change: ObserverChange): Promise<void> {
    try {
      if (!this.cancelled) await this.listener(change)
    } catch (error) {
      try {
        this.options.onError?.(error)
      } finally {
        this.deps.onError(error, this.query)
      }
    } finally {
      this.delivering = false
      if (change.initial) this.markReady()
      if (this.pending.size > 0) this.schedule()
    }
  }

  cancel(): void {
    if (this.cancelled) return
    this.cancelled = true
    this.pending.clear()
    this.detach()
    this.markReady()
  }

  [Symbol.dispose](): void {
    this.cancel()
  }
}
