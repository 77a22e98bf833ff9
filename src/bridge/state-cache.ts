import type { DocSyncState, Repository } from '../repository/repository.js'

/** Models with more documents than this are looked up in the database instead. */
const LIMIT = 250_000

/**
 * The hash and origin of every exchanged document of a model, in memory, so
 * that change detection does not query the database for each received
 * document. Loaded in one read on first use; kept current by the
 * coordinator, the only writer of the sync state, after each commit.
 * Models above 250,000 documents are not cached.
 */
export class StateCache {
  private readonly models = new Map<string, Map<string, DocSyncState> | null>()
  private readonly loading = new Map<string, Promise<void>>()
  /** States committed while a model loads: applied on top of what the load read. */
  private readonly early = new Map<string, { id: string; hash: string; origin: 'local' | 'remote' }[]>()

  constructor(private readonly repository: Repository) {}

  /** The stored states of `ids` (documents left null). */
  async lookup(model: string, ids: readonly string[]): Promise<Map<string, DocSyncState>> {
    let cached = this.models.get(model)
    if (cached === undefined) {
      await this.load(model)
      cached = this.models.get(model)
    }
    if (!cached) return this.repository.syncStates(model, ids, { documents: false })
    const out = new Map<string, DocSyncState>()
    for (const id of ids) {
      const s = cached.get(id)
      if (s) out.set(id, s)
    }
    return out
  }

  /** Records states just committed. */
  record(model: string, entries: readonly { id: string; hash: string; origin: 'local' | 'remote' }[]): void {
    if (this.loading.has(model)) {
      const list = this.early.get(model) ?? []
      list.push(...entries)
      this.early.set(model, list)
      return
    }
    const cached = this.models.get(model)
    if (!cached) return
    for (const e of entries) cached.set(e.id, { hash: e.hash, origin: e.origin, doc: null })
    if (cached.size > LIMIT) this.models.set(model, null)
  }

  /** Sets the states of `ids` to `stored` (read from the database); an id it lacks has none. */
  reload(model: string, stored: ReadonlyMap<string, DocSyncState>, ids: readonly string[]): void {
    const cached = this.models.get(model)
    if (!cached) return
    for (const id of ids) {
      const s = stored.get(id)
      if (s) cached.set(id, { hash: s.hash, origin: s.origin, doc: null })
      else cached.delete(id)
    }
  }

  /** Forgets everything (the sync state was cleared). */
  reset(): void {
    this.models.clear()
    this.early.clear()
  }

  private load(model: string): Promise<void> {
    let p = this.loading.get(model)
    if (!p) {
      p = this.repository
        .allSyncStates(model, LIMIT)
        .then(
          (all) => {
            this.models.set(model, all ?? null)
          },
          () => {
            // Looked up in the database instead.
            this.models.set(model, null)
          },
        )
        .finally(() => {
          this.loading.delete(model)
          const early = this.early.get(model)
          this.early.delete(model)
          if (early) this.record(model, early)
        })
      this.loading.set(model, p)
    }
    return p
  }
}
