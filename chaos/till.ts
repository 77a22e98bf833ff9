import { type ChildProcess, spawn } from 'node:child_process'
import { createWriteStream, readFileSync, type WriteStream, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { AppReport, ConfigShape, LockHoldReport } from './shop.js'

/**
 * The peers and apps running. Each has a process group of its own, so that
 * a frozen (SIGSTOP) one never finds itself in an orphaned process group
 * (the kernel hangs those up: a harness started in the background whose
 * shell exited would see its frozen tills die of SIGHUP). They are killed
 * when the harness exits, however it exits.
 */
const running = new Set<ChildProcess>()

function track(child: ChildProcess): void {
  running.add(child)
  child.once('exit', () => running.delete(child))
}

/** Kills every peer and app still running (at the harness's exit). */
export function killAll(): void {
  for (const child of running) {
    try {
      child.kill('SIGKILL')
    } catch {
      // Gone already.
    }
  }
  running.clear()
}

/** How to run a command of the package: `node dist/cli/main.js` or `node --import tsx src/cli/main.ts`. */
export interface Runtime {
  root: string
  cli: string[]
  app: string[]
}

type PeerState = 'down' | 'starting' | 'live' | 'stopping'

/** One sample of a peer's resident memory: ms since the shop opened, the process, kB. */
export interface MemorySample {
  atMs: number
  pid: number
  rssKb: number
  /** The JavaScript heap in use, from the peer's last status (MB), when it has reported one. */
  heapMb?: number
}

/** libfaketime preloaded with a per-till file holding the clock's offset, read at most once a second. */
export interface FakeClock {
  library: string
  file: string
}

/**
 * One till: its `meshmirror peer` process (restarted after every kill) and
 * its app process, with what happened to them.
 */
export class Till {
  peer: ChildProcess | undefined
  state: PeerState = 'down'
  frozen = false
  app: ChildProcess | undefined
  selling = false
  report: AppReport | undefined
  readonly stats = {
    starts: 0,
    /** Starts that reached `live`, and the slowest of them (ms). */
    lives: 0,
    slowestStartMs: 0,
    /** Exits the harness did not cause, with their code. */
    unexpectedExits: [] as string[],
    syncErrors: 0,
    rejected: 0,
    /** Documents a verification found out of step with the mesh (a change read and not written). */
    drifted: 0,
    maxRssKb: 0,
    /** Peer errors that name a full disk. */
    diskFullErrors: 0,
    /** Starts that stopped with an error (exit code 1) because the disk was full: reported, and retried. */
    refusedOnFullDisk: 0,
  }
  /** Whether the till's disk is full, and when it was last freed (performance.now()). */
  diskFull = false
  diskFreedAt = Number.NEGATIVE_INFINITY
  readonly memory: MemorySample[] = []
  /** The peer's JavaScript heap in use at its last status (MB). */
  private heapMb: number | undefined
  clockOffsetMs = 0
  readonly samples: { errors: string[]; rejected: string[]; drifted: string[] } = {
    errors: [],
    rejected: [],
    drifted: [],
  }
  /** The peer's holds of the write lock over a second (its `longTransaction` warnings). */
  readonly holds: LockHoldReport[] = []
  /** Start the peer again when it exits on its own. */
  supervised = true
  private expectExit = false
  private startedAt = 0
  private readonly log: WriteStream

  constructor(
    readonly index: number,
    readonly dir: string,
    readonly configFile: string,
    private readonly runtime: Runtime,
    /** The config for a shape. */
    private readonly configOf: (shape: ConfigShape) => Record<string, unknown>,
    public shape: ConfigShape,
    private readonly clock: FakeClock | undefined,
    /** The directory a disk-full fault fills (a tmpfs of its own), if any. */
    readonly disk: string | undefined,
  ) {
    this.log = createWriteStream(join(dir, 'peer.log'), { flags: 'a' })
    this.writeConfig()
    if (clock) this.setClock(0)
  }

  private writeConfig(): void {
    writeFileSync(this.configFile, JSON.stringify(this.configOf(this.shape), null, 2))
  }

  /** Changes the config the peer starts with next. */
  reshape(shape: ConfigShape): void {
    this.shape = shape
    this.writeConfig()
  }

  /** Sets the till's clock (peer and app, read within a second) to `offsetMs` from the real time. */
  setClock(offsetMs: number): void {
    if (!this.clock) return
    this.clockOffsetMs = offsetMs
    const s = Math.round(offsetMs / 1000)
    writeFileSync(this.clock.file, `${s >= 0 ? '+' : '-'}${Math.abs(s)}\n`)
  }

  /** The environment of the till's processes: the fake clock, when there is one. */
  private env(): NodeJS.ProcessEnv {
    if (!this.clock) return process.env
    return {
      ...process.env,
      LD_PRELOAD: this.clock.library,
      FAKETIME_TIMESTAMP_FILE: this.clock.file,
      FAKETIME_CACHE_DURATION: '1',
      // Timers run on the monotonic clock: only the wall clock moves.
      FAKETIME_DONT_FAKE_MONOTONIC: '1',
    }
  }

  get name(): string {
    return `till-${this.index + 1}`
  }

  get dbFile(): string {
    return join(this.dir, 'till.db')
  }

  /** Starts the peer; resolves once it is spawned (not live). */
  startPeer(): void {
    if (this.peer) return
    const child = spawn(process.execPath, [...this.runtime.cli, 'peer', '--json', '--config', this.configFile], {
      cwd: this.runtime.root,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: this.env(),
      // A process group of its own: see `track`.
      detached: true,
    })
    track(child)
    this.peer = child
    this.state = 'starting'
    this.expectExit = false
    this.startedAt = performance.now()
    this.stats.starts++
    this.log.write(`--- start ${this.stats.starts} pid ${child.pid} at ${new Date().toISOString()}\n`)
    // Whether this process said the disk was full: a peer stopping on a full disk exits with code 1.
    let saidDiskFull = false
    child.stderr!.on('data', (d) => {
      this.log.write(d)
      if (DISK_FULL.test(String(d))) {
        this.stats.diskFullErrors++
        saidDiskFull = true
      }
    })
    createInterface({ input: child.stderr! }).on('line', (line) => this.onPeerLog(line))
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (DISK_FULL.test(line)) saidDiskFull = true
      this.onPeerLine(child, line)
    })
    // `close`, not `exit`: the error a process ends with is read from its output by then.
    child.once('close', (code, signal) => {
      if (this.peer !== child) return
      this.peer = undefined
      this.state = 'down'
      this.log.write(`--- exit ${code ?? signal}\n`)
      if (this.expectExit) return
      // A start on a full disk fails with a clear error (exit code 1), and the next one, once
      // there is room again, goes on: as a supervisor would, start it again.
      if (code === 1 && (this.diskFull || performance.now() - this.diskFreedAt < 3000 || saidDiskFull))
        this.stats.refusedOnFullDisk++
      else this.stats.unexpectedExits.push(String(code ?? signal))
      if (this.supervised) setTimeout(() => this.supervised && !this.frozen && this.startPeer(), 500)
    })
  }

  /** Keeps the peer's reports of long holds of the write lock, to set against the app's SQLITE_BUSY. */
  private onPeerLog(line: string): void {
    if (!line.includes('"monotonicMs"')) return
    try {
      const e = JSON.parse(line) as Partial<LockHoldReport> & { event?: string }
      if (e.event !== 'log' || typeof e.monotonicMs !== 'number' || typeof e.heldMs !== 'number') return
      this.holds.push({
        monotonicMs: e.monotonicMs,
        heldMs: e.heldMs,
        cpuMs: e.cpuMs ?? 0,
        commitMs: e.commitMs ?? 0,
        origin: e.origin ?? '?',
        ...(e.records !== undefined ? { records: e.records } : {}),
      })
    } catch {
      // Not one of the peer's JSON lines.
    }
  }

  private onPeerLine(child: ChildProcess, line: string): void {
    let e: {
      event?: string
      message?: string
      id?: string
      reason?: string
      model?: string
      count?: number
      documents?: { model: string; id: string; kind: string; cacheDisagreed: boolean }[]
    }
    try {
      e = JSON.parse(line)
    } catch {
      this.log.write(`${line}\n`)
      return
    }
    if (e.event === 'status') {
      const heap = (e as { memory?: { heapUsedMb?: number } }).memory?.heapUsedMb
      if (typeof heap === 'number' && this.peer === child) this.heapMb = heap
      return
    }
    this.log.write(`${line}\n`)
    // The error a failed start or stop ends with ({ error: { code, message } }).
    if (e.event === undefined && DISK_FULL.test(line)) this.stats.diskFullErrors++
    if (e.event === 'live' && this.peer === child) {
      this.state = 'live'
      this.stats.lives++
      this.stats.slowestStartMs = Math.max(this.stats.slowestStartMs, performance.now() - this.startedAt)
    } else if (e.event === 'error' || e.event === 'warn') {
      if (DISK_FULL.test(line)) this.stats.diskFullErrors++
      if (e.event === 'warn') return
      this.stats.syncErrors++
      if (this.samples.errors.length < 5) this.samples.errors.push(String(e.message))
    } else if (e.event === 'drift') {
      this.stats.drifted += e.count ?? 0
      for (const d of e.documents ?? []) {
        if (this.samples.drifted.length < 5)
          this.samples.drifted.push(
            `${d.model}/${d.id} ${d.kind}${d.cacheDisagreed ? ' (in-memory state disagreed)' : ''}`,
          )
      }
    } else if (e.event === 'rejected') {
      this.stats.rejected++
      if (this.samples.rejected.length < 5) this.samples.rejected.push(`${e.model}/${e.id}: ${e.reason}`)
    }
  }

  /** SIGKILL; resolves when the process is gone. */
  async kill(): Promise<void> {
    const child = this.peer
    if (!child) return
    this.expectExit = true
    const gone = exitOf(child)
    child.kill('SIGKILL')
    await gone
  }

  /** SIGTERM, then SIGKILL after `killAfterMs` if it is still running. Resolves with its exit code (or signal), or `killed`. */
  async terminate(killAfterMs: number): Promise<number | string> {
    const child = this.peer
    if (!child) return 0
    this.expectExit = true
    this.state = 'stopping'
    const gone = exitOf(child)
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs)
    const how = await gone
    clearTimeout(timer)
    // SIGTERM before the peer set up its handler (early in its start) ends it by the signal.
    return how.signal === 'SIGKILL' ? 'killed' : (how.code ?? how.signal ?? 'unknown')
  }

  /** When the till was frozen, in ms of the monotonic clock (the end undefined while frozen). */
  readonly freezes: { from: number; to?: number }[] = []

  freeze(): void {
    this.freezes.push({ from: Number(process.hrtime.bigint() / 1_000_000n) })
    this.frozen = true
    this.peer?.kill('SIGSTOP')
    this.app?.kill('SIGSTOP')
  }

  thaw(): void {
    const last = this.freezes.at(-1)
    if (last && last.to === undefined) last.to = Number(process.hrtime.bigint() / 1_000_000n)
    this.frozen = false
    this.peer?.kill('SIGCONT')
    this.app?.kill('SIGCONT')
    // A peer that exited while frozen was not restarted then.
    if (this.supervised && !this.peer) this.startPeer()
  }

  startApp(seed: number, rate: number, catalogue: boolean): void {
    const args = [...this.runtime.app, this.dbFile, this.name, String(seed), String(rate)]
    if (catalogue) args.push('catalogue')
    const app = spawn(process.execPath, args, {
      cwd: this.runtime.root,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: this.env(),
      detached: true,
    })
    track(app)
    this.app = app
    const log = createWriteStream(join(this.dir, 'app.log'), { flags: 'a' })
    app.stderr!.pipe(log)
    createInterface({ input: app.stdout! }).on('line', (line) => {
      const e = JSON.parse(line) as { event: string; report?: AppReport }
      if (e.event === 'selling') this.selling = true
      if (e.event === 'report') this.report = e.report
    })
  }

  /** Stops the app; resolves with what it committed. */
  async stopApp(): Promise<AppReport | undefined> {
    const app = this.app
    if (!app) return this.report
    const gone = exitOf(app)
    app.kill('SIGCONT')
    app.kill('SIGTERM')
    await gone
    this.app = undefined
    return this.report
  }

  /** Samples the peer's resident memory; `atMs` is when, from the shop's opening. */
  sampleMemory(atMs: number): void {
    const pid = this.peer?.pid
    if (pid === undefined || this.frozen) return
    try {
      const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
      if (!m) return
      const rssKb = Number(m[1])
      this.stats.maxRssKb = Math.max(this.stats.maxRssKb, rssKb)
      this.memory.push({
        atMs: Math.round(atMs),
        pid,
        rssKb,
        ...(this.heapMb === undefined ? {} : { heapMb: this.heapMb }),
      })
    } catch {
      // Gone between the check and the read.
    }
  }

  close(): void {
    this.log.end()
  }
}

/** How a full disk shows in a peer's errors. */
const DISK_FULL = /SQLITE_FULL|ENOSPC|disk is full|database or disk is full|no space left/i

function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode })
  }
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
}
