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
 */
export class PushOverlap {
  private readonly open = new Set<ReadWindow>()
  /** Documents to read again once their push ends, by key. */
  private readonly waiting = new Map<string, { model: string; id: string }>()

  constructor(
    private readonly pushes: ReadonlyMap<string, string>,
    private readonly reread: (model: string, ids: string[]) => void,
  ) {}

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
    if (this.pushes.has(key)) this.waiting.set(key, { model, id })
    else this.reread(model, [id])
  }

  /** Pushes of these documents ended (their sync state is committed, or the push failed). */
  released(keys: readonly string[]): void {
    if (this.waiting.size === 0) return
    const byModel = new Map<string, string[]>()
    for (const key of keys) {
      const doc = this.waiting.get(key)
      if (!doc || this.pushes.has(key)) continue
      this.waiting.delete(key)
      const ids = byModel.get(doc.model)
      if (ids) ids.push(doc.id)
      else byModel.set(doc.model, [doc.id])
    }
    for (const [model, ids] of byModel) this.reread(model, ids)
  }
}
