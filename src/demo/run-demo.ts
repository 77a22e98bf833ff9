import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { ErrorCode, ValidationError } from '../errors.js'
import { type DemoHub, type ShopLine, startDemoHub, startShopLine } from './hub-server.js'
import { type TillMessage, TillProcess } from './till-process.js'
import { type Checks, readTill, type TillData, type Verification, verify } from './verify.js'

export interface DemoOptions {
  /** Tills (processes), at least 2. Default 3. */
  tills?: number
  /** Seconds of selling. Default 10. */
  durationSeconds?: number
  /** One sale per till every this many ms. Default 100. */
  saleIntervalMs?: number
  /** Longest wait for the tills to agree once selling stops. Default 30,000 ms. */
  convergeTimeoutMs?: number
  /** Keep the shop's directory (databases and mesh directories) instead of removing it. */
  keep?: boolean
  /** Receives a line of progress now and then. */
  onProgress?: (line: string) => void
  /**
   * Two shops of `tills` tills each, each shop on its own LAN, bridged by a
   * NATS JetStream hub (a `nats-server` the demo starts); shop B's line to
   * the hub is cut for a while instead of one till going offline.
   */
  hub?: boolean
}

/** One till in the verdict. */
export interface TillReport {
  name: string
  /** Orders it reported creating. */
  ordersCreated: number
  restarts: number
  rows: Record<string, number>
  fingerprint: string
}

/** What `meshmirror demo` concludes. */
export interface DemoVerdict {
  /** Every check passed. */
  converged: boolean
  checks: Checks
  tills: TillReport[]
  durationSeconds: number
  orders: number
  orderItems: number
  unitsSold: number
  /** Orders the disconnected till made while cut off from the others. */
  ordersWhileDisconnected: number
  /** From the end of selling until every database agreed (ms); null when they never did. */
  convergedAfterMs: number | null
  /** What happened to the shop, with seconds since selling began. */
  timeline: { at: number; event: string }[]
  lost: Verification['lost']
  stockMismatches: Verification['stockMismatches']
  /** Sync errors the tills reported (counted and retried; not by themselves a failure). */
  syncErrors: string[]
  /** With `hub`: the hub, and what shop B sold while cut off from it. */
  hub?: { url: string; shops: string[]; cutOff: string; ordersWhileCutOff: number }
  dir?: string
}

/**
 * Runs the demo shop: N tills, each its own process with its own database
 * and mesh directory, replicating over loopback WebSockets. They sell at a
 * steady rate; one is killed (SIGKILL) and restarted; one sells while
 * disconnected and catches up. Then every database is checked.
 */
export async function runDemo(options: DemoOptions = {}): Promise<DemoVerdict> {
  const n = options.tills ?? 3
  const duration = options.durationSeconds ?? 10
  if (!Number.isInteger(n) || n < 2 || n > 16) {
    throw new ValidationError(ErrorCode.INVALID_OPTIONS, `--tills must be an integer from 2 to 16, got ${n}.`)
  }
  if (!Number.isFinite(duration) || duration < 2 || duration > 3600) {
    throw new ValidationError(ErrorCode.INVALID_OPTIONS, `--duration must be 2 to 3600 seconds, got ${duration}.`)
  }
  const progress = options.onProgress ?? (() => undefined)
  const root = mkdtempSync(join(tmpdir(), 'meshmirror-demo-'))
  let hub: { server: DemoHub; lines: ShopLine[] } | undefined
  try {
    if (options.hub) {
      const server = await startDemoHub(join(root, 'hub'))
      hub = { server, lines: [await startShopLine(server.port), await startShopLine(server.port)] }
    }
  } catch (error) {
    await hub?.server.stop()
    rmSync(root, { recursive: true, force: true })
    throw error
  }
  const shop = new Shop(root, n, options.saleIntervalMs ?? 100, progress, hub?.lines)
  try {
    const verdict = await shop.run(duration, options.convergeTimeoutMs ?? 30_000, options.keep === true)
    return hub ? { ...verdict, hub: { ...verdict.hub!, url: hub.server.url } } : verdict
  } finally {
    await shop.close()
    for (const l of hub?.lines ?? []) await l.close()
    await hub?.server.stop()
    if (!options.keep) rmSync(root, { recursive: true, force: true })
  }
}

class Shop {
  private readonly tills: TillProcess[] = []
  private readonly ports: number[] = []
  private readonly reported = new Set<string>()
  private readonly created = new Map<string, number>()
  private readonly restarts = new Map<string, number>()
  private readonly syncErrors: string[] = []
  private readonly timeline: DemoVerdict['timeline'] = []
  private started = 0
  private soldOffline = 0
  /** Tills in all: `n`, or `n` per shop with two shops on a hub. */
  private readonly total: number

  constructor(
    private readonly root: string,
    private readonly n: number,
    private readonly intervalMs: number,
    private readonly progress: (line: string) => void,
    /** With a hub: each shop's line to it (shop A, shop B). */
    private readonly lines?: ShopLine[],
  ) {
    this.total = lines ? 2 * n : n
  }

  private name(i: number): string {
    if (!this.lines) return `till-${i + 1}`
    return `${i < this.n ? 'a' : 'b'}-till-${(i % this.n) + 1}`
  }

  /** The index of the first till of till i's shop: its LAN is the tills from there to i. */
  private shopStart(i: number): number {
    return this.lines && i >= this.n ? this.n : 0
  }

  private note(event: string): void {
    const at = this.started === 0 ? 0 : Math.round((Date.now() - this.started) / 100) / 10
    this.timeline.push({ at, event })
    this.progress(`[${at.toFixed(1).padStart(5)} s] ${event}`)
  }

  private onMessage(name: string, m: TillMessage): void {
    if (m.t === 'sale') {
      this.reported.add(m.id)
      this.created.set(name, (this.created.get(name) ?? 0) + 1)
    } else if (m.t === 'error' && this.syncErrors.length < 50) {
      this.syncErrors.push(`${name} ${m.phase}: ${m.message}`)
    }
  }

  /** Starts till i (again), dialing the tills before it; resolves once it has the catalogue. */
  private async open(i: number): Promise<TillProcess> {
    const name = this.name(i)
    const dir = join(this.root, name)
    mkdirSync(dir, { recursive: true })
    const till = new TillProcess(
      {
        name,
        dir,
        port: this.ports[i] ?? 0,
        peers: this.ports.slice(this.shopStart(i), i).map((p) => `ws://127.0.0.1:${p}`),
        catalogue: i === 0,
        intervalMs: this.intervalMs,
        ...(this.lines ? { hub: this.lines[i < this.n ? 0 : 1]!.url } : {}),
      },
      (m) => this.onMessage(name, m),
    )
    this.tills[i] = till
    const ready = await till.next('ready')
    this.ports[i] = ready.port
    await till.next('catalogue')
    return till
  }

  private dataFiles(): TillData[] {
    return this.tills.map((t) => readTill(t.args.name, join(t.args.dir, 'till.db')))
  }

  async run(duration: number, convergeTimeoutMs: number, keep: boolean): Promise<DemoVerdict> {
    this.progress(
      this.lines
        ? `demo chain in ${this.root}: 2 shops of ${this.n} tills, each shop on its LAN, both on a NATS hub; ${duration} s of sales`
        : `demo shop in ${this.root}: ${this.n} tills, ${duration} s of sales`,
    )
    await this.open(0)
    this.progress(`${this.name(0)} open on ws://127.0.0.1:${this.ports[0]} with the catalogue`)
    for (let i = 1; i < this.total; i++) {
      await this.open(i)
      const via = this.lines && i === this.n ? ' (through the hub)' : ''
      this.progress(`${this.name(i)} open on ws://127.0.0.1:${this.ports[i]}, catalogue received${via}`)
    }
    this.started = Date.now()
    this.note(`selling on ${this.total} tills, one sale every ${this.intervalMs} ms each`)
    for (const t of this.tills) t.send('sell')

    const victim = 1
    const offline = this.n - 1
    const at = (fraction: number) => this.started + fraction * duration * 1000
    const until = async (time: number) => {
      const ms = time - Date.now()
      if (ms > 0) await delay(ms)
    }
    const ticker = setInterval(() => this.progress(`        ${this.counts()}`), 2000)
    try {
      await until(at(0.25))
      this.tills[victim]!.child.kill('SIGKILL')
      await this.tills[victim]!.exited
      this.note(`${this.name(victim)} killed (SIGKILL) mid-sale`)
      await this.open(victim)
      this.restarts.set(this.name(victim), (this.restarts.get(this.name(victim)) ?? 0) + 1)
      this.tills[victim]!.send('sell')
      this.note(`${this.name(victim)} restarted on the same directory, selling again`)

      await until(at(0.45))
      if (this.lines) await this.cutShop(duration, until, at(0.75))
      else {
        this.tills[offline]!.send('offline')
        await this.tills[offline]!.next('offline')
        const before = this.created.get(this.name(offline)) ?? 0
        this.note(`${this.name(offline)} disconnected from the other tills, still selling`)
        await until(at(0.75))
        // A slow restart above can eat the window: stay cut off until the till has sold while apart.
        const cap = Date.now() + duration * 1000
        while ((this.created.get(this.name(offline)) ?? 0) === before && Date.now() < cap) await delay(20)
        this.tills[offline]!.send('online')
        await this.tills[offline]!.next('online')
        this.soldOffline = (this.created.get(this.name(offline)) ?? 0) - before
        this.note(`${this.name(offline)} reconnected with ${this.soldOffline} orders made while cut off, catching up`)
      }

      await until(at(1))
    } finally {
      clearInterval(ticker)
    }
    await Promise.all(
      this.tills.map((t) => {
        const stopped = t.next('stopped')
        t.send('stop')
        return stopped
      }),
    )
    this.note(`selling stopped: ${this.counts()}; waiting for every till to agree`)
    const stoppedAt = Date.now()
    let data = this.dataFiles()
    let result = verify(data, this.reported)
    while (!allPass(result.checks) && Date.now() - stoppedAt < convergeTimeoutMs) {
      await delay(100)
      data = this.dataFiles()
      result = verify(data, this.reported)
    }
    const converged = allPass(result.checks)
    const convergedAfterMs = converged ? Date.now() - stoppedAt : null
    this.note(
      converged
        ? `all ${this.total} databases agree (${convergedAfterMs} ms after the last sale)`
        : 'the tills do not agree',
    )
    const first = data[0]!
    return {
      converged,
      checks: result.checks,
      tills: data.map((d) => ({
        name: d.name,
        ordersCreated: this.created.get(d.name) ?? 0,
        restarts: this.restarts.get(d.name) ?? 0,
        rows: d.rows,
        fingerprint: d.fingerprint,
      })),
      durationSeconds: duration,
      orders: first.rows.orders ?? 0,
      orderItems: first.rows.order_items ?? 0,
      unitsSold: [...first.sold.values()].reduce((a, b) => a + b, 0),
      ordersWhileDisconnected: this.soldOffline,
      convergedAfterMs,
      timeline: this.timeline,
      lost: result.lost,
      stockMismatches: result.stockMismatches,
      syncErrors: this.syncErrors,
      ...(this.lines ? { hub: { url: '', shops: ['a', 'b'], cutOff: 'b', ordersWhileCutOff: this.soldOffline } } : {}),
      ...(keep ? { dir: this.root } : {}),
    }
  }

  /** Cuts shop B's line to the hub until `end` (and until it sold while cut off); its LAN goes on. */
  private async cutShop(duration: number, until: (time: number) => Promise<void>, end: number): Promise<void> {
    const shopB = () => this.tills.slice(this.n).reduce((s, t) => s + (this.created.get(t.args.name) ?? 0), 0)
    const before = shopB()
    this.lines![1]!.cut()
    this.note('shop B cut off from the hub (its line is down); its tills go on selling and syncing on their LAN')
    await until(end)
    const cap = Date.now() + duration * 1000
    while (shopB() === before && Date.now() < cap) await delay(20)
    this.lines![1]!.restore()
    this.soldOffline = shopB() - before
    this.note(`shop B back on the hub with ${this.soldOffline} orders made while cut off, catching up`)
  }

  private counts(): string {
    return this.tills.map((t) => `${t.args.name} ${this.created.get(t.args.name) ?? 0}`).join(', ') + ' orders'
  }

  async close(): Promise<void> {
    await Promise.all(this.tills.map((t) => t.stop(15_000)))
  }
}

function allPass(c: Checks): boolean {
  return c.identical && c.stockConsistent && c.nothingLost && c.ordersComplete
}
