import { type FSWatcher, realpathSync, watch } from 'node:fs'
import { basename, dirname } from 'node:path'
import type Database from 'better-sqlite3'
import { type Logger, silentLogger } from '../logger.js'
import type { ChangeDetection } from './repository.js'
import type { ModelStatements } from './sqlite-statements.js'

/** The poll period while file notifications are trusted: a safety net, not the way writes are found. */
export const WATCHED_POLL_MS = 1_000

/**
 * A commit's writes to the WAL come before the commit is visible: an app
 * that syncs its WAL (`synchronous = FULL`, SQLite's default outside
 * better-sqlite3) waits for the disk in between, and its notification is
 * read first. A notification of the WAL that finds no commit is followed
 * by checks after these waits (ms), until one finds it. (Writes to the
 * database file itself are checkpoints, which commit nothing.)
 */
const SETTLE_MS = [1, 2, 5, 10, 20, 50, 100] as const

/**
 * Notices writes captured into the outbox by any connection or process.
 * SQLite has no cross-connection notification, but every commit writes the
 * database's files: a watch on its directory (inotify on Linux, FSEvents,
 * ReadDirectoryChangesW) wakes the check at once, and `PRAGMA data_version`,
 * which changes when another connection commits and costs next to nothing
 * to read, confirms it before the outbox is looked at.
 *
 * The poll stays as a fallback: every `intervalMs` when the directory
 * cannot be watched (a file system without notifications, a database in
 * memory), and every {@link WATCHED_POLL_MS} otherwise. Commits the slow
 * poll finds with no notification before them, twice in a row (once can be
 * a notification still on its way), mean this file system does not
 * deliver them; the poll then goes back to `intervalMs` for good.
 */
export class ChangePoller {
  private readonly listeners = new Set<() => void>()
  private timer: NodeJS.Timeout | undefined
  private watcher: FSWatcher | undefined
  private dataVersion = 0
  private lastSeq = 0
  private stopped = false
  /** A notification arrived since the last poll. */
  private notified = false
  private scheduled = false
  /** Checks again after a notification that found no commit (see SETTLE_MS). */
  private settleTimer: NodeJS.Timeout | undefined
  /** A notification since the last check named the WAL (or no file). */
  private walNotified = false
  /** Timed polls in a row that found a commit no notification announced. */
  private misses = 0
  /** The watch missed commits: notifications are not trusted on this file system. */
  private untrusted = false
  /** Why the last attempt to watch gave up (reported, and logged once). */
  private problem: { reason: NonNullable<ChangeDetection['reason']>; error?: string } | undefined

  constructor(
    private readonly reader: Database.Database,
    private readonly statements: ModelStatements,
    private readonly intervalMs: number,
    private readonly file?: string,
    private readonly logger: Logger = silentLogger,
  ) {}

  /** How writes are noticed now: `watch` (notifications, slow poll as a net) or `poll`. */
  get mode(): 'watch' | 'poll' {
    return this.watcher && !this.untrusted ? 'watch' : 'poll'
  }

  /** How writes are noticed now, and why by polling when they are. */
  detection(): ChangeDetection {
    if (this.timer === undefined) return { mode: 'off', pollMs: this.intervalMs }
    if (this.mode === 'watch') return { mode: 'watch', pollMs: Math.max(this.intervalMs, WATCHED_POLL_MS) }
    const problem = this.problem ?? { reason: this.file ? 'no-file' : 'disabled' }
    return { mode: 'poll', pollMs: this.intervalMs, ...problem }
  }

  add(listener: () => void): () => void {
    this.listeners.add(listener)
    if (this.timer === undefined && !this.stopped) {
      this.dataVersion = this.reader.pragma('data_version', { simple: true }) as number
      this.lastSeq = this.statements.maxOutboxSeq()
      this.startWatch()
      this.schedulePoll()
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

  private startWatch(): void {
    if (!this.file || this.untrusted) return
    let file: string
    try {
      // SQLite keeps the WAL and journal beside the file a symbolic link points to, not beside the link.
      file = realpathSync(this.file)
    } catch {
      // No such file (a database in memory, or one not created yet): the poll does the job.
      this.problem = { reason: 'no-file' }
      return
    }
    const base = basename(file)
    try {
      // The directory, not the files: the WAL and journal come and go, and a watch on a removed file goes silent.
      this.watcher = watch(dirname(file), { persistent: false }, (_event, name) => {
        if (name !== null && !String(name).startsWith(base)) return
        this.notified = true
        this.misses = 0
        if (name === null || String(name).endsWith('-wal')) this.walNotified = true
        if (this.scheduled) return
        // Many notifications per commit: one check for the lot.
        this.scheduled = true
        setImmediate(() => {
          this.scheduled = false
          const wal = this.walNotified
          this.walNotified = false
          if (!this.poll(false) && wal) this.settle()
        })
      })
      this.watcher.on('error', (error) => {
        this.giveUp({ reason: 'watch-unavailable', error: errorCode(error) })
        this.dropWatch()
      })
      this.problem = undefined
    } catch (error) {
      // No notifications here (or no more watches to spare): the poll does the job.
      this.watcher = undefined
      this.giveUp({ reason: 'watch-unavailable', error: errorCode(error) })
    }
  }

  /** Records why writes are polled for, and says so once per kind of problem. */
  private giveUp(problem: NonNullable<ChangePoller['problem']>): void {
    const known = this.problem?.reason === problem.reason
    this.problem = problem
    if (known) return
    this.logger.warn(`the app's writes are found by polling every ${this.intervalMs} ms, not by file notifications`, {
      file: this.file,
      ...problem,
    })
  }

  private dropWatch(): void {
    this.watcher?.close()
    this.watcher = undefined
    if (this.timer !== undefined) this.schedulePoll()
  }

  private schedulePoll(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    const every = this.mode === 'watch' ? Math.max(this.intervalMs, WATCHED_POLL_MS) : this.intervalMs
    this.timer = setInterval(() => this.poll(true), every)
    this.timer.unref()
  }

  /** Checks for a commit once: true when one happened (or the check failed), false when nothing changed. */
  private poll(timed: boolean): boolean {
    if (this.stopped) return true
    try {
      const v = this.reader.pragma('data_version', { simple: true }) as number
      if (v === this.dataVersion) {
        if (timed) this.notified = false
        return false
      }
      this.dataVersion = v
      clearTimeout(this.settleTimer)
      this.settleTimer = undefined
      if (timed && this.mode === 'watch' && !this.notified && ++this.misses >= 2) {
        // Commits the watch never announced: fall back to the fast poll.
        this.untrusted = true
        this.giveUp({ reason: 'notifications-missed' })
        this.dropWatch()
      }
      this.notified = false
      this.check()
    } catch {
      // A failed poll (the database briefly unreadable) is simply repeated on the next tick.
    }
    return true
  }

  /** A notification found no commit: checks again a few times, soon first, until one finds it (see SETTLE_MS). */
  private settle(): void {
    if (this.settleTimer !== undefined || this.stopped) return
    let step = 0
    const next = () => {
      this.settleTimer = setTimeout(() => {
        this.settleTimer = undefined
        if (!this.poll(false) && ++step < SETTLE_MS.length) next()
      }, SETTLE_MS[step])
      this.settleTimer.unref()
    }
    next()
  }

  private pause(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
    clearTimeout(this.settleTimer)
    this.settleTimer = undefined
    this.watcher?.close()
    this.watcher = undefined
  }
}

/** A file system error's code (`ENOSPC`, `EACCES` …), or its message. */
function errorCode(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code
  return typeof code === 'string' ? code : String(error)
}
