import type { DashboardSource, DocChange, Problem } from './source.js'

/** One thing that happened to a document, as the dashboard saw it. */
export interface ActivityEntry {
  /** When the dashboard saw it (ms since the epoch). */
  at: number
  kind: 'mesh-write' | 'removed' | Problem['kind']
  /** The device that wrote (mesh writes), when known. */
  site?: string
  /** True when this device wrote it (sent), false when another did (received). */
  local?: boolean
  writtenAt?: string
  fields?: string[]
  reason?: string
}

/** Entries kept per document, and documents kept. */
const PER_DOC = 20
const DOCS = 5000

/**
 * A bounded log of what happened to each document while the dashboard runs:
 * every write the mesh's change feed shows (with its device and fields) and
 * every problem. The row view of the dashboard shows a document's entries.
 */
export class ActivityLog {
  private readonly docs = new Map<string, ActivityEntry[]>()
  private readonly cursors = new Map<string, string>()
  private reading: Promise<void> | undefined

  constructor(private readonly source: DashboardSource) {}

  /** Starts following every table's collection from now on. */
  async start(): Promise<void> {
    const cursor = await this.source.cursor()
    for (const t of this.source.tables()) this.cursors.set(t.collection, cursor)
  }

  /** Reads what the mesh changed since the last call (one read at a time; a call during one is skipped). */
  poll(): Promise<void> {
    this.reading ??= this.read().finally(() => {
      this.reading = undefined
    })
    return this.reading
  }

  private async read(): Promise<void> {
    for (const t of this.source.tables()) {
      const cursor = this.cursors.get(t.collection)
      if (cursor === undefined) continue
      // A large catch-up is read a page a poll: the log keeps the latest anyway.
      const page = await this.source.changes(t.collection, cursor, 500)
      this.cursors.set(t.collection, page.cursor)
      const now = Date.now()
      for (const c of page.changes) this.push(t.collection, c.id, this.entry(c, now))
    }
  }

  private entry(c: DocChange, at: number): ActivityEntry {
    return {
      at,
      kind: c.removed ? 'removed' : 'mesh-write',
      ...(c.site === undefined ? {} : { site: c.site, local: c.site === this.source.siteId }),
      ...(c.writtenAt === undefined ? {} : { writtenAt: c.writtenAt }),
      ...(c.fields === undefined ? {} : { fields: c.fields }),
    }
  }

  problem(p: Problem): void {
    if (p.collection === undefined) return
    this.push(p.collection, p.id, { at: p.at, kind: p.kind, reason: p.reason })
  }

  private push(collection: string, id: string, entry: ActivityEntry): void {
    const key = `${collection}\u0000${id}`
    const list = this.docs.get(key) ?? []
    this.docs.delete(key)
    list.unshift(entry)
    if (list.length > PER_DOC) list.length = PER_DOC
    this.docs.set(key, list)
    if (this.docs.size > DOCS) this.docs.delete(this.docs.keys().next().value as string)
  }

  /** A document's entries, newest first. */
  of(collection: string, id: string): ActivityEntry[] {
    return this.docs.get(`${collection}\u0000${id}`) ?? []
  }
}
