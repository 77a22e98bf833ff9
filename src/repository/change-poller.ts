import type Database from 'better-sqlite3'
import type { ModelStatements } from './sqlite-statements.js'

/**
 * Notices writes captured into the outbox by any connection or process.
 * SQLite has no cross-connection notification; `PRAGMA data_version`
 * changes when another connection commits, and reading it costs next to
 * nothing, so it is polled; only then is the outbox looked at.
 */
export class ChangePoller {
  private readonly listeners = new Set<() => void>()
  private timer: NodeJS.Timeout | undefined
  private dataVersion = 0
  private lastSeq = 0
  private stopped = false

  constructor(
    private readonly reader: Database.Database,
    private readonly statements: ModelStatements,
    private readonly intervalMs: number,
  ) {}

  add(listener: () => void): () => void {
    this.listeners.add(listener)
    if (this.timer === undefined && !this.stopped) {
      this.dataVersion = this.reader.pragma('data_version', { simple: true }) as number
      this.lastSeq = this.statements.maxOutboxSeq()
      this.timer = setInterval(() => this.poll(), this.intervalMs)
      this.timer.unref()
    }
    return () => {
      this.listeners.delete(listener)
      if (this.listeners.size === 0) this.pause()
    }
  }

  /** Tells listeners when the outbox grew (also called after this process's own commits). */
  check(): void {
    if (this.listeners.size === 0 || this.stopped) return
    const seq = this.statements.maxOutboxSeq()
    if (seq === this.lastSeq) return
    this.lastSeq = seq
    for (const l of this.listeners) l()
  }

  stop(): void {
    this.stopped = true
    this.listeners.clear()
    this.pause()
  }

  private poll(): void {
    if (this.stopped) return
    try {
      const v = this.reader.pragma('data_version', { simple: true }) as number
      if (v === this.dataVersion) return
      this.dataVersion = v
      this.check()
    } catch {
      // A failed poll (the database briefly unreadable) is simply repeated on the next tick.
    }
  }

  private pause(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
  }
}
