/**
 * Ditto's pending operations (a transaction, an observer's next delivery)
 * do not keep Node's event loop alive, and a process whose loop empties
 * while Ditto still has live observers aborts (SIGABRT). So a store holds a
 * ref'd handle while any of its operations is in flight and while any of
 * its observers is live (like a listening socket, an observer waits for
 * events). When neither holds, the loop may empty: every open store is then
 * closed (`beforeExit`), so a process that forgets `close()` exits 0.
 */
export class KeepAlive {
  private pending = 0
  private readonly timer: NodeJS.Timeout

  constructor() {
    this.timer = setInterval(() => {}, 2 ** 30)
    this.timer.unref()
  }

  /** Runs `fn` with the event loop held. */
  async hold<T>(fn: () => Promise<T>): Promise<T> {
    this.retain()
    try {
      return await fn()
    } finally {
      this.release()
    }
  }

  retain(): void {
    if (this.pending++ === 0) this.timer.ref()
  }

  release(): void {
    if (--this.pending === 0) this.timer.unref()
  }

  dispose(): void {
    clearInterval(this.timer)
  }
}

interface Closable {
  close(): Promise<void>
}

const KEY = Symbol.for('meshmirror.ditto.open-stores.v1')

function openStores(): Set<Closable> {
  const g = globalThis as { [KEY]?: Set<Closable> }
  if (!g[KEY]) {
    const stores = new Set<Closable>()
    g[KEY] = stores
    process.on('beforeExit', () => {
      // Closing schedules work, so beforeExit fires again afterwards, with the set then empty.
      for (const store of [...stores]) void store.close().catch(() => {})
    })
  }
  return g[KEY]
}

/** Registers an open store to be closed when the event loop empties. */
export function closeOnExit(store: Closable): () => void {
  const stores = openStores()
  stores.add(store)
  return () => stores.delete(store)
}
