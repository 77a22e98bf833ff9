import { docKey } from './doc-key.js'

/** Documents being pushed at some moment of one read of the mesh, by document key. */
export type ReadWindow = Set<string>

/**
 * Keeps remote content read before a local write from landing after it.
 *
 * A read of the mesh (a page of the change feed, a reconcile) and a local
 * push of the same document are not serialised: the read can return the
 * mesh's content from before the push, and be taken in once the push has
 * committed, when that content is no longer the latest. Applying it would
 * put older content over the newer local row (or bring back a row the app
 * just deleted) and record it as the exchanged state. Instead, a document
 * read while its push was underway, or queued before its push began, is read
 * again from the mesh once the push is done: the mesh then holds the local
 * write merged with whatever else arrived.
 *
 * Until every such second read has been taken in, stored cursors stay where
 * they are (`hold`): the cursor of the page that brought the document moves
 * past its change, and a peer stopped before the second read would not read
 * it again.
 */
export class PushOverlap {
  private readonly open = new Set<ReadWindow>()
  /** Documents to read again once their push ends, by key. */
  private readonly waiting = new Map<string, { model: string; id: string }>()
  /** Second reads not taken in yet, by document key (waiting, or being read). */
  private readonly outstanding = new Map<string, number>()
  private total = 0

  constructor(
    private readonly pushes: ReadonlyMap<string, string>,
    /** Reads documents again; resolves once their content is taken in (queued to be written). */
    private readonly reread: (model: string, ids: string[]) => Promise<void>,
    /** Stored cursors must not move (`true`) while second reads are outstanding, and may again (`false`). */
    private readonly hold: (on: boolean) => void = () => undefined,
  ) {}

  /** Second reads not taken in yet. */
  get pending(): number {
    return this.total
  }

  /** Starts a read of the mesh: the window collects the documents being pushed during it. */
  beginRead(): ReadWindow {
    const window: ReadWindow = new Set(this.pushes.keys())
    this.open.add(window)
    return window
  }

  /** Ends a read: its content has been taken in. */
  endRead(window: ReadWindow): void {
    this.open.delete(window)
  }

  /** A push of a document begins: reads in progress may hold its content from before. */
  pushing(key: string): void {
    for (const window of this.open) window.add(key)
  }

  /** Reads a document again once its push (if one is underway) has ended. */
  rereadAfterPush(model: string, id: string): void {
    const key = docKey(model, id)
    if (this.pushes.has(key)) {
      if (this.waiting.has(key)) return
      this.begin(key)
      this.waiting.set(key, { model, id })
    } else {
      this.begin(key)
      this.run(model, [id], [key])
    }
  }

  /** Pushes of these documents ended (their sync state is committed, or the push failed). */
  released(keys: readonly string[]): void {
    if (this.waiting.size === 0) return
    const byModel = new Map<string, { ids: string[]; keys: string[] }>()
    for (const key of keys) {
      const doc = this.waiting.get(key)
      if (!doc || this.pushes.has(key)) continue
      this.waiting.delete(key)
      const group = byModel.get(doc.model)
      if (group) {
        group.ids.push(doc.id)
        group.keys.push(key)
      } else byModel.set(doc.model, { ids: [doc.id], keys: [key] })
    }
    for (const [model, { ids, keys: done }] of byModel) this.run(model, ids, done)
  }

  private run(model: string, ids: string[], keys: string[]): void {
    this.reread(model, ids)
      .catch(() => undefined) // Reported by `reread` itself.
      .finally(() => {
        for (const key of keys) this.end(key)
      })
  }

  private begin(key: string): void {
    this.outstanding.set(key, (this.outstanding.get(key) ?? 0) + 1)
    if (this.total++ === 0) this.hold(true)
  }

  private end(key: string): void {
    const n = (this.outstanding.get(key) ?? 1) - 1
    if (n > 0) this.outstanding.set(key, n)
    else this.outstanding.delete(key)
    if (--this.total === 0) this.hold(false)
  }
}
