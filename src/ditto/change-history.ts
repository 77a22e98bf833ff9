import type { Document } from '../mesh/document.js'
import { compileScope } from '../mesh/filter.js'
import { matches } from '../mesh/match.js'
import type { ChangeCursor, ChangeSet, ChangesSinceOptions } from '../mesh/mesh-store.js'
import type { Scope } from '../mesh/query.js'
import { positiveLimit } from '../mesh/validate.js'
import type { ChangeLog } from './change-log.js'

/** How the history reads Ditto. */
export interface HistoryReads {
  /** Every document of a collection. */
  collection(name: string): Promise<Map<string, Document>>
  /** Documents by id. */
  byIds(collection: string, ids: readonly string[]): Promise<Map<string, Document>>
}

/**
 * `changesSince` on the change log. A collection is reconciled (read whole,
 * compared by content hash) on its first call in a session, and on every
 * call once changes can bypass the store (sync ran, or the raw Ditto handle
 * was taken); otherwise only the noted documents are read.
 */
export class ChangeHistory {
  /** Set once changes may reach Ditto without passing through the store. */
  outsideWrites = false
  private readonly reconciled = new Set<string>()

  constructor(
    private readonly log: ChangeLog,
    private readonly reads: HistoryReads,
  ) {}

  async since(cursor: ChangeCursor | null, scope: Scope, options: ChangesSinceOptions): Promise<ChangeSet> {
    const compiled = compileScope(scope)
    const after = cursor === null ? 0 : this.log.decodeCursor(cursor)
    const limit = positiveLimit(options.limit, 10_000)
    const c = compiled.collection
    let docs: Map<string, Document> | undefined
    if (!this.reconciled.has(c) || this.outsideWrites) {
      docs = await this.reads.collection(c)
      this.log.reconcile(c, docs.values())
      if (!this.outsideWrites) this.reconciled.add(c)
    }
    const entries = this.log.entriesAfter(c, after)
    // Where these entries end: writes noted while the documents are read come after it, and are read next time.
    const end = this.log.currentSeq
    if (!docs) {
      docs = await this.reads.byIds(
        c,
        entries.filter((e) => !e.removed).map((e) => e.id),
      )
      this.log.recordHashes(c, [...docs.values()])
    }
    const set: ChangeSet = { changed: [], removed: [], cursor: '', hasMore: false }
    let last = after
    for (const e of entries) {
      if (set.changed.length + set.removed.length >= limit) {
        set.hasMore = true
        break
      }
      last = e.seq
      if (e.removed) set.removed.push(e.id)
      else {
        const doc = docs.get(e.id)
        if (doc && matches(compiled.filter, doc)) set.changed.push(doc)
      }
    }
    set.cursor = this.log.encodeCursor(set.hasMore ? last : end)
    return set
  }

  current(): ChangeCursor {
    return this.log.encodeCursor(this.log.currentSeq)
  }
}
