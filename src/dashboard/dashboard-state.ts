import type { Logger } from '../logger.js'
import { ActivityLog } from './activity.js'
import { DeviceTracker } from './devices.js'
import { TableSeries } from './series.js'
import type { DashboardSnapshot, DashboardSource, Problem } from './source.js'

/** How often the page is sent a fresh overview, at most. */
const PUSH_EVERY_MS = 1000

/** What the dashboard keeps between requests: charts, devices that left, the activity log. */
export class DashboardState {
  private readonly series = new TableSeries()
  private readonly devices = new DeviceTracker()
  private readonly activity: ActivityLog
  private readonly offs: (() => void)[] = []
  private readonly overviewListeners: ((o: unknown) => void)[] = []
  private readonly problemListeners: ((p: Problem) => void)[] = []
  private lastSnapshot: DashboardSnapshot | undefined
  private lastPush = 0
  private lastPoll = 0
  private pending: NodeJS.Timeout | undefined
  private counts: { at: number; byTable: Record<string, Record<Problem['kind'], number>> } | undefined
  private closed = false

  constructor(
    private readonly source: DashboardSource,
    private readonly logger: Logger,
  ) {
    this.activity = new ActivityLog(source)
  }

  async start(): Promise<void> {
    await this.activity.start()
    this.offs.push(
      this.source.on('snapshot', (s) => this.snapshot(s)),
      this.source.on('problem', (p) => {
        this.activity.problem(p)
        this.counts = undefined
        for (const l of this.problemListeners) l(p)
      }),
    )
  }

  onOverview(l: (o: unknown) => void): void {
    this.overviewListeners.push(l)
  }

  onProblem(l: (p: Problem) => void): void {
    this.problemListeners.push(l)
  }

  private snapshot(s: DashboardSnapshot): void {
    if (this.closed) return
    this.lastSnapshot = s
    const now = Date.now()
    this.devices.update(s.peers, now)
    this.series.add(
      now,
      this.source.modelCounts(),
      this.source.tables().map((t) => t.model),
      s,
    )
    // The change feed is read once a second at most, however short the status interval.
    if (now - this.lastPoll >= 1000) {
      this.lastPoll = now
      void this.activity.poll().catch((error) => this.logger.warn('dashboard activity', { error: String(error) }))
    }
    // At most one overview a second goes out, however often snapshots come.
    if (this.pending) return
    const wait = Math.max(0, this.lastPush + PUSH_EVERY_MS - now)
    this.pending = setTimeout(() => {
      this.pending = undefined
      this.lastPush = Date.now()
      if (this.overviewListeners.length === 0) return
      this.overview().then(
        (o) => {
          for (const l of this.overviewListeners) l(o)
        },
        (error) => this.logger.warn('dashboard overview', { error: String(error) }),
      )
    }, wait)
    this.pending.unref()
  }

  private async problemCounts(): Promise<Record<string, Record<Problem['kind'], number>>> {
    if (this.counts && Date.now() - this.counts.at < 5000) return this.counts.byTable
    const byTable: Record<string, Record<Problem['kind'], number>> = {}
    for (const p of await this.source.problems(10_000)) {
      const t = p.table ?? '?'
      byTable[t] ??= { parked: 0, refused: 0, rejected: 0, conflict: 0 }
      byTable[t][p.kind]++
    }
    this.counts = { at: Date.now(), byTable }
    return byTable
  }

  async overview() {
    const snapshot = this.lastSnapshot ?? (await this.source.snapshot())
    if (!this.lastSnapshot) this.devices.update(snapshot.peers, Date.now())
    const problems = await this.problemCounts()
    return {
      siteId: this.source.siteId,
      backend: this.source.backend,
      snapshot,
      devices: this.devices.list(),
      tables: this.source.tables().map((t) => ({
        ...t,
        rows: snapshot.tables[t.table] ?? 0,
        documents: snapshot.collections[t.collection] ?? 0,
        problems: problems[t.table] ?? { parked: 0, refused: 0, rejected: 0, conflict: 0 },
        series: this.series.of(t.model),
        progress: snapshot.progress?.model === t.model ? snapshot.progress : undefined,
      })),
    }
  }

  async problems(params: URLSearchParams): Promise<Problem[]> {
    const kind = params.get('kind')
    const table = params.get('table')
    const text = (params.get('q') ?? '').toLowerCase()
    return (await this.source.problems(1000)).filter(
      (p) =>
        (!kind || p.kind === kind) &&
        (!table || p.table === table) &&
        (!text || `${p.id} ${p.reason} ${p.code ?? ''}`.toLowerCase().includes(text)),
    )
  }

  async row(table: string, id: string) {
    const view = await this.source.row(table, id)
    if (!view) return undefined
    const t = this.source.tables().find((x) => x.table === table)
    return { ...view, history: t ? this.activity.of(t.collection, view.docId) : [] }
  }

  close(): void {
    this.closed = true
    if (this.pending) clearTimeout(this.pending)
    for (const off of this.offs.splice(0)) off()
  }
}
