import { statSync } from 'node:fs'
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
// `shared`: [busy, checkpoints, the WAL's frames when the last checkpoint began], read by commits
// without waiting for the event loop. The connection syncs
// as the writer's does: a checkpoint syncs the WAL and the database before the WAL can start over.
// A checkpoint copies the WAL up to where it was when it began; the writer starts the WAL over only when
// the whole of it is copied, so while commits come in, the few frames they added are copied at once too.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const Database = require(workerData.driver)
const shared = new Int32Array(workerData.shared)
const db = new Database(workerData.file, { fileMustExist: true })
db.pragma('synchronous = ' + workerData.synchronous)
parentPort.on('message', (m) => {
  if (m === 'close') {
    db.close()
    parentPort.close()
    return
  }
  try {
    for (let i = 0; i < 3; i++) {
      const r = db.pragma('wal_checkpoint(PASSIVE)')[0]
      Atomics.add(shared, 1, 1)
      if (i === 0) Atomics.store(shared, 2, r.log)
      if (r.busy !== 0 || r.checkpointed >= r.log) break
    }
    Atomics.store(shared, 0, 0)
  } catch (e) {
    Atomics.store(shared, 0, 0)
    parentPort.postMessage({ error: String((e && e.message) || e) })
  }
})
`

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
  private worker: Worker | undefined
  private state: 'ready' | 'failed' | 'closed' = 'ready'
  private lookedAt = Number.NEGATIVE_INFINITY
  private requestedAt = Number.NEGATIVE_INFINITY
  private everyMs: number = EVERY_MS.first
  private exited: Promise<void> | undefined
  /** [busy, checkpoints, the WAL's frames when the last checkpoint began], shared with the worker. */
  private readonly shared = new Int32Array(new SharedArrayBuffer(12))
  private readonly wal: string
  private readonly frameBytes: number
  /** Bytes commits stored since the last checkpoint was asked for (see `committed`). */
  private written = 0

  constructor(private readonly options: WalCheckpointerOptions) {
    this.wal = `${options.file}-wal`
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
    if (this.worker && this.written >= this.pages * this.frameBytes) {
      this.request()
      return
    }
    const now = performance.now()
    if (now - this.lookedAt < LOOK_EVERY_MS) return
    this.lookedAt = now
    if (!this.worker) {
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
    if (this.state !== 'ready' || (!start && !this.worker)) return false
    if (Atomics.load(this.shared, 0) !== 0) return true
    Atomics.store(this.shared, 0, 1)
    this.requestedAt = performance.now()
    this.written = 0
    this.start().postMessage('checkpoint')
    return true
  }

  /** Stops the worker, after the checkpoint it is running, and waits for it to close its connection. */
  async close(): Promise<void> {
    if (this.state !== 'closed') {
      this.state = 'closed'
      this.worker?.postMessage('close')
    }
    if (!this.exited) return
    let timer: NodeJS.Timeout | undefined
    const stuck = new Promise<'stuck'>((resolve) => {
      timer = setTimeout(() => resolve('stuck'), CLOSE_WAIT_MS)
    })
    const outcome = await Promise.race([this.exited, stuck])
    clearTimeout(timer)
    if (outcome === 'stuck') await this.worker?.terminate()
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

  private start(): Worker {
    if (this.worker) return this.worker
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        driver: this.options.driver ?? DRIVER,
        file: this.options.file,
        synchronous: Number(this.options.writer.pragma('synchronous', { simple: true })),
        shared: this.shared.buffer,
      },
    })
    // A process that forgets to close its store still exits.
    worker.unref()
    worker.on('message', (reply: { error: string }) => {
      this.fail('a checkpoint in the worker failed', reply.error)
      worker.postMessage('close')
    })
    worker.on('error', (error) => this.fail('the checkpoint worker failed', error))
    this.exited = new Promise((resolve) => {
      worker.once('exit', (code) => {
        if (this.state === 'ready') this.fail(`the checkpoint worker exited (code ${code})`, undefined)
        resolve()
      })
    })
    this.worker = worker
    return worker
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
