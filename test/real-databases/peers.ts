// Two or three devices, each an app database and a `meshmirror peer`
// process on a config written by `meshmirror init`, connected over
// WebSockets on 127.0.0.1: the first device listens, the others dial it.
// Waits are for states (data equal everywhere, rows parked, counts in the
// status events), never for a fixed time.
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type Database from 'better-sqlite3'
import { waitFor } from '../bridge/helpers/wait.js'
import { type CliProcess, runCli, startCli } from '../cli/helpers.js'
import { type Dump, diffDumps, dumpCounts, dumpDatabase, userTables } from './dump.js'
import { countRows, openAppDatabase } from './schemas.js'

/** What `meshmirror init --json` prints. */
export interface InitResult {
  file: string
  config: { meshId: string; secret: string; tables: { table: string; id?: string }[] } & Record<string, unknown>
  skipped: { table: string; reason: string }[]
  keys: { table: string; keys: 'global' | 'local'; reason: string }[]
}

/** One entry of `meshmirror parked --json`. */
export interface ParkedEntry {
  collection: string
  id: string
  state: 'parked' | 'refused'
  reason: string
  since: string
  attempts: number
}

/** What `meshmirror parked --json` prints. */
export interface ParkedReport {
  parked: number
  refused: number
  entries: ParkedEntry[]
}

/** Runs `meshmirror init --json` on a database; fails with the command's output when it does not succeed. */
export async function runInit(database: string, out: string, extra: string[] = []): Promise<InitResult> {
  const r = await runCli(['init', '--database', database, '--out', out, '--json', ...extra])
  if (r.code !== 0) throw new Error(`meshmirror init exited ${r.code}:\n${r.stdout}\n${r.stderr}`)
  return JSON.parse(r.stdout) as InitResult
}

/** A device: its app database (an app connection with foreign keys on), its config, its peer process. */
export class Device {
  /** The running peer, when it runs. */
  proc: CliProcess | undefined
  port: number | undefined
  /** Every peer process this device ran, for the error check. */
  readonly runs: CliProcess[] = []

  constructor(
    readonly name: string,
    readonly dbFile: string,
    readonly configFile: string,
    readonly db: Database.Database,
    readonly init: InitResult,
  ) {}

  dump(tables?: readonly string[]): Dump {
    return dumpDatabase(this.db, tables)
  }

  /** Rows per table. */
  counts(tables: readonly string[] = userTables(this.db)): Record<string, number> {
    return countRows(this.db, tables)
  }

  /** The latest status event of the running peer (`--json`), the snapshot itself. */
  status(): Snapshot | undefined {
    const lines = this.proc?.lines ?? []
    for (let i = lines.length - 1; i >= 0; i--) {
      const l = lines[i]!
      if (!l.includes('"event":"status"')) continue
      return JSON.parse(l) as Snapshot
    }
    return undefined
  }

  /** `meshmirror parked -c <config> --json` (works whether the peer runs or not). */
  async parked(): Promise<ParkedReport> {
    const r = await runCli(['parked', '-c', this.configFile, '--json'])
    if (r.code !== 0) {
      throw new Error(
        `meshmirror parked on ${this.name} exited ${r.code}: ${r.stdout.slice(0, 500)} ${r.stderr.slice(0, 500)}`,
      )
    }
    return JSON.parse(r.stdout) as ParkedReport
  }

  /** `error` events and error-level log lines of every run of this device's peer. */
  errors(): string[] {
    const out: string[] = []
    for (const p of this.runs) {
      out.push(...p.lines.filter((l) => l.includes('"event":"error"')))
      out.push(
        ...p
          .stderr()
          .split('\n')
          .filter((l) => /"level":"error"|^error:/i.test(l)),
      )
    }
    return out
  }
}

/** The status snapshot, as far as these tests read it. */
export interface Snapshot {
  phase: string
  sync: { applied: number; rejected: number; errors: number; parked?: number; refused?: number }
  tables: Record<string, number>
}

/** A set of devices on one mesh. */
export class Mesh {
  private constructor(
    readonly devices: Device[],
    /** The tables compared between devices (default: every user table). */
    readonly tables: readonly string[] | undefined,
  ) {}

  /**
   * Creates `names.length` app databases from `ddl` in `dir`, lets `prepare`
   * fill them (before any peer runs), writes each config with `meshmirror
   * init` and joins them into one mesh (the first device's mesh id and
   * secret; it listens on 127.0.0.1, port 0, the others dial it).
   */
  static async create(
    dir: string,
    names: string[],
    ddl: string,
    prepare: (db: Database.Database, name: string, index: number) => void = () => undefined,
    options: {
      tables?: readonly string[]
      /**
       * The key mode of the tables `init` chose one for, as a person reviewing
       * the config sets it (`global` for data seeded at one place with ids the
       * app assigns). Default: what `init` wrote.
       */
      keys?: 'global' | 'local'
    } = {},
  ): Promise<Mesh> {
    const made = names.map((name, i) => {
      const dbFile = join(dir, `${name}.db`)
      const db = openAppDatabase(dbFile, ddl)
      prepare(db, name, i)
      return { name, dbFile, db, configFile: join(dir, `${name}.config.json`) }
    })
    const inits = await Promise.all(made.map((m) => runInit(m.dbFile, m.configFile, ['--port', '0'])))
    const first = inits[0]!.config
    const devices = made.map((m, i) => {
      const config = JSON.parse(readFileSync(m.configFile, 'utf8')) as Record<string, unknown>
      config.meshId = first.meshId
      config.secret = first.secret
      if (options.keys) {
        for (const t of config.tables as { keys?: string }[]) if (t.keys !== undefined) t.keys = options.keys
      }
      config.statusIntervalMs = 100
      // A restarted device is found again quickly.
      config.reconnect = { minMs: 50, maxMs: 500 }
      if (i === 0) config.listen = { host: '127.0.0.1', port: 0 }
      else delete config.listen
      writeFileSync(m.configFile, JSON.stringify(config, null, 2))
      return new Device(m.name, m.dbFile, m.configFile, m.db, inits[i]!)
    })
    return new Mesh(devices, options.tables)
  }

  get(name: string): Device {
    const d = this.devices.find((x) => x.name === name)
    if (!d) throw new Error(`no device ${name}`)
    return d
  }

  /** Starts the listening device, then the others pointed at it; resolves when every one is live. */
  async startAll(): Promise<void> {
    await this.start(this.devices[0]!)
    await Promise.all(this.devices.slice(1).map((d) => this.start(d)))
  }

  /** Starts a device's peer (a dialing device is pointed at the first device's port) and waits for `live`. */
  async start(device: Device): Promise<void> {
    if (device !== this.devices[0]) {
      const port = this.devices[0]!.port
      if (port === undefined) throw new Error('the listening device has not started')
      const config = JSON.parse(readFileSync(device.configFile, 'utf8')) as Record<string, unknown>
      config.peers = [`ws://127.0.0.1:${port}`]
      writeFileSync(device.configFile, JSON.stringify(config, null, 2))
    }
    const proc = startCli(['peer', '--json', '--config', device.configFile])
    device.proc = proc
    device.runs.push(proc)
    let live: Record<string, unknown>
    try {
      live = await proc.event('live')
    } catch {
      if (proc.child.exitCode === null) proc.child.kill('SIGKILL')
      const tail = proc.lines.slice(-15).map((l) => l.slice(0, 300))
      throw new Error(
        `${device.name}'s peer did not go live (exit ${proc.child.exitCode}); last of ${proc.lines.length} lines:\n${tail.join('\n')}\nstderr: ${proc.stderr().slice(-2000)}`,
      )
    }
    if (device === this.devices[0] && device.port === undefined) {
      device.port = live.port as number
      // The same port on the next start, so the others find it again.
      const config = JSON.parse(readFileSync(device.configFile, 'utf8')) as Record<string, unknown>
      config.listen = { host: '127.0.0.1', port: device.port }
      writeFileSync(device.configFile, JSON.stringify(config, null, 2))
    }
  }

  /** Stops a device's peer with SIGTERM and checks it stopped cleanly. */
  async stop(device: Device): Promise<void> {
    const proc = device.proc
    if (!proc) return
    proc.child.kill('SIGTERM')
    const code = await proc.exited
    device.proc = undefined
    if (code !== 0) throw new Error(`${device.name}'s peer exited ${code} on SIGTERM: ${proc.stderr()}`)
  }

  /**
   * Waits until every device's database holds exactly the same rows (typeof
   * and value of every column of every table) and `accept` holds for it.
   */
  async converged(message: string, accept: (dump: Dump) => boolean = () => true, timeout = 30_000): Promise<Dump> {
    let last: string[] = []
    try {
      return await waitFor(
        () => {
          // Row counts first: cheap, and they differ while rows are still arriving.
          const counts = this.devices.map((d) => JSON.stringify(d.counts(this.tables)))
          if (counts.some((c) => c !== counts[0])) {
            last = counts.map((c, i) => `${this.devices[i]!.name} ${c}`)
            return undefined
          }
          const dumps = this.devices.map((d) => d.dump(this.tables))
          const first = dumps[0]!
          last = []
          for (let i = 1; i < dumps.length; i++) {
            last.push(...diffDumps(first, dumps[i]!, [this.devices[0]!.name, this.devices[i]!.name], 4))
          }
          return last.length === 0 && accept(first) ? first : undefined
        },
        { timeout, interval: 200, message },
      )
    } catch (error) {
      const counts = this.devices.map((d) => `${d.name} ${JSON.stringify(dumpCounts(d.dump(this.tables)))}`)
      throw new Error(`${(error as Error).message}\n${counts.join('\n')}\n${last.join('\n')}`)
    }
  }

  /** Waits until a device's peer reports at least `n` parked documents in its status events. */
  async statusCount(device: Device, key: 'parked' | 'refused', accept: (n: number) => boolean, timeout = 20_000) {
    return waitFor(
      () => {
        const n = device.status()?.sync[key]
        return typeof n === 'number' && accept(n) ? { n } : undefined
      },
      { timeout, interval: 50, message: `${device.name}'s status to report sync.${key} as wanted` },
    )
  }

  /** Polls `meshmirror parked --json` on a device until `accept` holds. */
  async parkedUntil(device: Device, accept: (r: ParkedReport) => boolean, timeout = 20_000): Promise<ParkedReport> {
    let last: ParkedReport | undefined
    try {
      return await waitFor(
        async () => {
          last = await device.parked()
          return accept(last) ? last : undefined
        },
        { timeout, interval: 100, message: `meshmirror parked on ${device.name}` },
      )
    } catch (error) {
      throw new Error(`${(error as Error).message}; last report: ${JSON.stringify(last)?.slice(0, 2000)}`)
    }
  }

  /** Kills every peer still running, closes the app connections. */
  async close(): Promise<void> {
    for (const d of this.devices) {
      const p = d.proc
      if (p && p.child.exitCode === null) p.child.kill('SIGKILL')
      if (p) await p.exited
      d.proc = undefined
      d.db.close()
    }
  }
}
