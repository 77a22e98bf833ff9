import { realpathSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'
import type Database from 'better-sqlite3'
import type { Logger } from '../logger.js'

/** SQLite's default `wal_autocheckpoint`, kept by `inline` and restored when the worker fails. */
const INLINE_PAGES = 1000
/** How often, at most, commits look at the WAL (ms). */
const LOOK_EVERY_MS = 16
/** Time between checkpoints while commits come in (ms): adapted to copy about `pages` each time. */
const EVERY_MS = { first: 1000, least: 100, most: 4000 } as const
/** How long close waits for the worker to finish its checkpoint and close its connection (ms). */
const CLOSE_WAIT_MS = 5000
/** better-sqlite3, resolved here so the worker loads the same copy wherever the package is installed. */
const DRIVER = createRequire(import.meta.url).resolve('better-sqlite3')

// CommonJS, evaluated in the worker: no file to find next to the compiled code or the TypeScript source.
// One worker serves every database of the process that checkpoints in the background, each on a
// connection of its own, one checkpoint at a time. Per database, `shared`: [busy, checkpoints, the WAL's
// frames when the last checkpoint began], read by commits without waiting for the event loop. A
// connection syncs as its writer's does: a checkpoint syncs the WAL and the database before the WAL can
// start over. A checkpoint copies the WAL up to where it was when it began; the writer starts the WAL over
// only when the whole of it is copied, so while commits come in, the few frames they added are copied at
// once too.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const Database = require(workerData.driver)
const dbs = new Map()
function checkpoint(d) {
  d.again = undefined
  if (d.closed) return
  const shared = d.shared
  try {
    let r
    for (let i = 0; i < 3; i++) {
      r = d.db.pragma('wal_checkpoint(PASSIVE)')[0]
      Atomics.add(shared, 1, 1)
      if (i === 0) Atomics.store(shared, 2, r.log)
      if (r.busy !== 0 || r.checkpointed >= r.log) break
    }
    // Commits keep coming (the WAL grew since the last checkpoint, did not start over, and holds more
    // than a little): the next one follows on its own, without waiting for a request from the writer's thread.
    const growing = r.log !== d.lastLog
    d.lastLog = r.log
    if (r.busy === 0 && growing && r.log >= d.followPages) {
      d.again = setTimeout(() => checkpoint(d), d.followMs)
      return
    }
    Atomics.store(shared, 0, 0)
  } catch (e) {
    Atomics.store(shared, 0, 0)
    parentPort.postMessage({ id: d.id, error: String((e && e.message) || e) })
  }
}
parentPort.on('message', (m) => {
  if (m.op === 'open') {
    const d = { id: m.id, shared: new Int32Array(m.shared), followPages: m.followPages, followMs: m.followMs, lastLog: -1 }
    dbs.set(m.id, d)
    try {
      d.db = new Database(m.file, { fileMustExist: true })
      d.db.pragma('synchronous = ' + m.synchronous)
    } catch (e) {
      d.closed = true
      parentPort.postMessage({ id: m.id, error: String((e && e.message) || e) })
    }
  } else if (m.op === 'checkpoint') {
    const d = dbs.get(m.id)
    if (d) checkpoint(d)
  } else if (m.op === 'close') {
    const d = dbs.get(m.id)
    if (d) {
      d.closed = true
      clearTimeout(d.again)
      if (d.db) d.db.close()
      dbs.delete(m.id)
    }
    parentPort.postMessage({ id: m.id, closed: true })
  } else if (m.op === 'exit') {
    parentPort.close()
  }
})
`

/** A message from the worker about one database. */
type WorkerReply = { id: number; error: string } | { id: number; closed: true }

/** Worker threads this process runs for checkpoints now (one per driver; one in practice). */
export function checkpointThreads(): number {
  return CheckpointThread.byDriver.size
}

/** What the shared worker needs from each database it serves. */
interface Client {
  failed(message: string, error: unknown): void
  closed(): void
}

/**
 * The worker thread of the process (one per driver): started by the first
 * database that needs it, stopped when the last one closes. A thread costs
 * about 9 MB and 40 ms of CPU to start; a peer checkpointing its store and
 * the app's database, or a process holding many stores, starts one.
 */
class CheckpointThread {
  static readonly byDriver = new Map<string, CheckpointThread>()
  private readonly clients = new Map<number, Client>()
  private nextId = 1
  private readonly worker: Worker
  private dead = false

  static for(driver: string): CheckpointThread {
    let t = CheckpointThread.byDriver.get(driver)
    if (!t || t.dead) {
      t = new CheckpointThread(driver)
      CheckpointThread.byDriver.set(driver, t)
    }
    return t
  }

  private constructor(private readonly driver: string) {
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { driver } })
    // A process that forgets to close its stores still exits.
    this.worker.unref()
    this.worker.on('message', (reply: WorkerReply) => {
      const client = this.clients.get(reply.id)
      if (!client) return
      if ('closed' in reply) {
        this.clients.delete(reply.id)
        client.closed()
        this.stopIfUnused()
      } else client.failed('a checkpoint in the worker failed', reply.error)
    })
    this.worker.on('error', (error) => this.die('the checkpoint worker failed', error))
    this.worker.once('exit', (code) => this.die(`the checkpoint worker exited (code ${code})`, undefined))
  }

  /** Opens `file` on the worker's own connection; the client hears of failures and of its close. */
  open(
    client: Client,
    file: string,
    synchronous: number,
    shared: SharedArrayBuffer,
    follow: { pages: number; ms: number },
  ): number {
    const id = this.nextId++
    this.clients.set(id, client)
    this.worker.postMessage({
      op: 'open',
      id,
      file,
      synchronous,
      shared,
      followPages: follow.pages,
      followMs: follow.ms,
    })
    return id
  }

  checkpoint(id: number): void {
    if (!this.dead) this.worker.postMessage({ op: 'checkpoint', id })
  }

  /** Closes the database's connection in the worker, after the checkpoint it is running; `closed` follows. */
  close(id: number): void {
    if (this.dead) this.clients.get(id)?.closed()
    else this.worker.postMessage({ op: 'close', id })
  }

  /** Stops a thread whose close of one database never came (a checkpoint stuck): every client falls back. */
  async terminate(): Promise<void> {
    await this.worker.terminate()
  }

  private stopIfUnused(): void {
    if (this.clients.size > 0 || this.dead) return
    this.dead = true
    CheckpointThread.byDriver.delete(this.driver)
    this.worker.postMessage({ op: 'exit' })
  }

  /** The thread is gone: the databases still open go back to their writers' checkpoints, and count as closed. */
  private die(message: string, error: unknown): void {
    const wasDead = this.dead
    this.dead = true
    if (CheckpointThread.byDriver.get(this.driver) === this) CheckpointThread.byDriver.delete(this.driver)
    const clients = [...this.clients.values()]
    this.clients.clear()
    for (const c of clients) {
      if (!wasDead) c.failed(message, error)
      c.closed()
    }
  }
}

export interface WalCheckpointerOptions {
  /** The database file. */
  file: string
  /** The connection whose commits fill the WAL; its automatic checkpoint becomes the backstop. */
  writer: Database.Database
  logger: Logger
  /**
   * About how many WAL pages each checkpoint should copy: the time between
   * them adapts to it, and the worker starts at a quarter of it. Default 1000.
   */
  pages?: number
  /**
   * The writer's `wal_autocheckpoint` while the worker runs: it bounds the
   * WAL if the worker is stuck, and copies what the worker has not when
   * back-to-back commits never leave the WAL fully copied. Default 4,000
   * pages (16 MB).
   */
  backstopPages?: number
  /** The writer's `wal_autocheckpoint` if the worker fails. Default 1000 (SQLite's). */
  fallbackPages?: number
  /** The module the worker loads better-sqlite3 from (default: this package's). */
  driver?: string
}

/** What the worker has done. */
export interface CheckpointStats {
  /** Checkpoints run by the worker. */
  checkpoints: number
}

/**
 * Takes the WAL checkpoints of one connection off the event loop.
 *
 * better-sqlite3 is synchronous: with SQLite's automatic checkpoint, the
 * commit that takes the WAL past 1000 pages copies them into the database
 * and syncs it (about 9 ms on an idle machine), and the process waits.
 * Here a worker thread, started once the WAL holds a quarter of
 * `pages` (stores that write little never start one), runs
 * `wal_checkpoint(PASSIVE)` on its own connection: it never waits for the
 * writer, and the writer never waits for it. The writer's automatic
 * checkpoint stays, raised to `backstopPages`, so the WAL stays bounded if
 * the worker is stuck; if the worker fails, the writer goes back to
 * `fallbackPages` (SQLite's default 1000) and a warning is logged.
 */
export class WalCheckpointer {
  private readonly pages: number
  /** The process's worker and this database's id there, once started. */
  private thread: { t: CheckpointThread; id: number } | undefined
  private state: 'ready' | 'failed' | 'closed' = 'ready'
  private lookedAt = Number.NEGATIVE_INFINITY
  private requestedAt = Number.NEGATIVE_INFINITY
  private everyMs: number = EVERY_MS.first
  /** Resolves when the worker has closed this database's connection (or is gone). */
  private exited: Promise<void> | undefined
  private onExited: (() => void) | undefined
  /** [busy, checkpoints, the WAL's frames when the last checkpoint began], shared with the worker. */
  private readonly shared = new Int32Array(new SharedArrayBuffer(12))
  private readonly wal: string
  private readonly frameBytes: number
  /** Bytes commits stored since the last checkpoint was asked for (see `committed`). */
  private written = 0

  constructor(private readonly options: WalCheckpointerOptions) {
    this.wal = `${realPath(options.file)}-wal`
    this.frameBytes = Number(options.writer.pragma('page_size', { simple: true })) + 24
    this.pages = options.pages ?? INLINE_PAGES
    options.writer.pragma(`wal_autocheckpoint = ${options.backstopPages ?? 4 * INLINE_PAGES}`)
  }

  /** True while checkpoints run in the worker (false once it failed or was closed). */
  get active(): boolean {
    return this.state === 'ready'
  }

  /** True while a checkpoint runs in the worker. */
  get busy(): boolean {
    return Atomics.load(this.shared, 0) !== 0
  }

  stats(): CheckpointStats {
    return { checkpoints: Atomics.load(this.shared, 1) }
  }

  /**
   * Called after each commit of the writer, with about how many bytes it
   * stored (its rows' text): starts the worker when the WAL has grown
   * enough, then asks it for checkpoints.
   */
  committed(bytes = 0): void {
    this.written += bytes
    if (this.state !== 'ready' || Atomics.load(this.shared, 0) !== 0) return
    // Commits that stored about `pages` of rows since the last request (a bulk load, a catch-up) ask at once:
    // waiting for the interval would let the WAL reach the backstop, which then copies it on the event loop.
    if (this.thread && this.written >= this.pages * this.frameBytes) {
      this.request()
      return
    }
    const now = performance.now()
    if (now - this.lookedAt < LOOK_EVERY_MS) return
    this.lookedAt = now
    if (!this.thread) {
      // Until the worker runs, only the writer's backstop checkpoints: the WAL file grows with each commit.
      const frames = this.fileFrames()
      if (frames >= this.pages) this.request()
      // Starting a thread takes the event loop a millisecond or more: done ahead of need, after this commit's turn.
      else if (frames >= this.pages / 4) setImmediate(() => this.state === 'ready' && this.start())
      return
    }
    if (now - this.requestedAt < this.everyMs) return
    // The WAL's frames at the last checkpoint (it starts over after each complete one): the time between
    // checkpoints goes down when they found more than `pages`, up when they found less than half of it.
    const log = Atomics.load(this.shared, 2)
    if (log > this.pages) this.everyMs = Math.max(this.everyMs / 2, EVERY_MS.least)
    else if (log < this.pages / 2) this.everyMs = Math.min(this.everyMs * 2, EVERY_MS.most)
    this.request()
  }

  /**
   * Starts a checkpoint in the worker now, unless one is running. False when
   * the worker is unavailable, or not started and `start` is false (a WAL
   * too small to have started it is cheap to copy where it is).
   */
  request(start = true): boolean {
    if (this.state !== 'ready' || (!start && !this.thread)) return false
    if (Atomics.load(this.shared, 0) !== 0) return true
    Atomics.store(this.shared, 0, 1)
    this.requestedAt = performance.now()
    this.written = 0
    const { t, id } = this.start()
    t.checkpoint(id)
    return true
  }

  /** Closes the worker's connection, after the checkpoint it is running, and waits for it. */
  async close(): Promise<void> {
    if (this.state !== 'closed') {
      this.state = 'closed'
      if (this.thread) this.thread.t.close(this.thread.id)
    }
    if (!this.exited) return
    let timer: NodeJS.Timeout | undefined
    const stuck = new Promise<'stuck'>((resolve) => {
      timer = setTimeout(() => resolve('stuck'), CLOSE_WAIT_MS)
    })
    const outcome = await Promise.race([this.exited, stuck])
    clearTimeout(timer)
    if (outcome === 'stuck') await this.thread?.t.terminate()
  }

  /**
   * Frames in the WAL file, by its size. Never by reading the `-shm` file's
   * header: closing a descriptor of a file drops every POSIX lock this
   * process holds on it, SQLite's included, and another process opening the
   * database would then truncate the shared memory under this one's
   * connections (SIGBUS). The size only grows until the WAL first starts
   * over, which is all it is used for.
   */
  private fileFrames(): number {
    const size = statSync(this.wal, { throwIfNoEntry: false })?.size ?? 0
    return Math.max(Math.floor((size - 32) / this.frameBytes), 0)
  }

  private start(): { t: CheckpointThread; id: number } {
    if (this.thread) return this.thread
    const t = CheckpointThread.for(this.options.driver ?? DRIVER)
    this.exited = new Promise((resolve) => {
      this.onExited = resolve
    })
    const id = t.open(
      {
        failed: (message, error) => {
          this.fail(message, error)
          t.close(id)
        },
        closed: () => {
          if (this.state === 'ready') this.fail('the checkpoint worker closed this database', undefined)
          this.onExited?.()
        },
      },
      this.options.file,
      Number(this.options.writer.pragma('synchronous', { simple: true })),
      this.shared.buffer as SharedArrayBuffer,
      { pages: Math.ceil(this.pages / 4), ms: EVERY_MS.least },
    )
    this.thread = { t, id }
    return this.thread
  }

  /** Goes back to checkpoints on the writer's commits, as SQLite does by default. */
  private fail(message: string, error: unknown): void {
    if (this.state !== 'ready') return
    this.state = 'failed'
    this.options.logger.warn(`WAL checkpoints return to the writer's commits: ${message}`, {
      file: this.options.file,
      ...(error === undefined ? {} : { error: String(error) }),
    })
    const pages = this.options.fallbackPages ?? INLINE_PAGES
    if (this.options.writer.open) this.options.writer.pragma(`wal_autocheckpoint = ${pages}`)
  }
}

/** Where a database file really is: SQLite keeps its WAL beside the file a symbolic link points to. */
function realPath(file: string): string {
  try {
    return realpathSync(file)
  } catch {
    return file
  }
}
