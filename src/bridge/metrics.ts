/** Counters of one model. */
export interface ModelMetrics {
  /** Remote documents and removals examined. */
  received: number
  /** Remote content equal to what was last exchanged (no write needed). */
  skippedUnchanged: number
  /** Our own writes seen coming back, and notifications of content just applied from the mesh. */
  echoSuppressed: number
  /** Remote changes not for this device: out of scope, left the scope, or skipped by the adapter. */
  filtered: number
  /** Remote changes held back because the row had local edits not yet sent; the merged result follows. */
  deferred: number
  /** Rows written or deleted in the repository. */
  applied: number
  /** Documents or records refused (see `rejectedByReason`). */
  rejected: number
  /** Remote rows parked because their parent row was not there yet (applied when it lands). */
  parked: number
  /** Documents written to or removed from the mesh. */
  pushed: number
  /** Local changes whose content the mesh already had. */
  pushSkippedUnchanged: number
}

/** A snapshot of the coordinator's counters. */
export interface SyncMetrics extends ModelMetrics {
  rejectedByReason: Record<string, number>
  /** Apply transactions committed. */
  batches: number
  /** Apply transaction latency (ms) over the last 1,024 batches. */
  batchLatencyMs: { last: number; mean: number; p50: number; p99: number; max: number }
  /** Received changes waiting to be written. */
  queueDepth: number
  /** Times an apply waited for another writer. */
  busyRetries: number
  /** Transactions that held the database's write lock for a second or more (the repository's `longTransactionMs`), and the longest, ms. */
  longTransactions: { count: number; longestMs: number }
  /** For the last batch: from receipt of its oldest change to commit (ms). */
  lagMs: number
  /** For the last drain: age of the oldest local change it sent (ms). */
  localLagMs: number
  /** Failures counted (each also emitted as an `error` event). */
  errors: number
  /** Verifications against the mesh: how many ran, when the last ended (epoch ms), documents found out of step. */
  verify: { runs: number; lastAt: number | null; drifted: number }
  byModel: Record<string, ModelMetrics>
}

export type ModelCounter = keyof ModelMetrics

const WINDOW = 1024

function emptyModel(): ModelMetrics {
  return {
    received: 0,
    skippedUnchanged: 0,
    echoSuppressed: 0,
    filtered: 0,
    deferred: 0,
    applied: 0,
    rejected: 0,
    parked: 0,
    pushed: 0,
    pushSkippedUnchanged: 0,
  }
}

/** Collects the counters behind {@link SyncMetrics}. */
export class MetricsRecorder {
  private readonly total = emptyModel()
  private readonly models = new Map<string, ModelMetrics>()
  private readonly reasons: Record<string, number> = {}
  private readonly latencies: number[] = []
  private latencySum = 0
  private latencyMax = 0
  private lastLatency = 0
  private batchCount = 0
  private lag = 0
  private localLag = 0
  busyRetries = 0
  errors = 0
  private readonly long = { count: 0, longestMs: 0 }
  readonly verify = { runs: 0, lastAt: null as number | null, drifted: 0 }

  count(model: string, counter: ModelCounter, n = 1): void {
    if (n === 0) return
    this.total[counter] += n
    let m = this.models.get(model)
    if (!m) {
      m = emptyModel()
      this.models.set(model, m)
    }
    m[counter] += n
  }

  reject(model: string, reason: string): void {
    this.count(model, 'rejected')
    this.reasons[reason] = (this.reasons[reason] ?? 0) + 1
  }

  batch(latencyMs: number, lagMs: number): void {
    this.batchCount++
    this.lastLatency = latencyMs
    this.latencySum += latencyMs
    if (latencyMs > this.latencyMax) this.latencyMax = latencyMs
    this.latencies.push(latencyMs)
    if (this.latencies.length > WINDOW) this.latencies.shift()
    this.lag = lagMs
  }

  longTransaction(heldMs: number): void {
    this.long.count++
    if (heldMs > this.long.longestMs) this.long.longestMs = heldMs
  }

  localLagMs(ms: number): void {
    this.localLag = ms
  }

  snapshot(queueDepth: number): SyncMetrics {
    const sorted = [...this.latencies].sort((a, b) => a - b)
    const at = (p: number) =>
      sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!
    const byModel: Record<string, ModelMetrics> = {}
    for (const [name, m] of this.models) byModel[name] = { ...m }
    return {
      ...this.total,
      rejectedByReason: { ...this.reasons },
      batches: this.batchCount,
      batchLatencyMs: {
        last: this.lastLatency,
        mean: this.batchCount === 0 ? 0 : this.latencySum / this.batchCount,
        p50: at(0.5),
        p99: at(0.99),
        max: this.latencyMax,
      },
      queueDepth,
      busyRetries: this.busyRetries,
      longTransactions: { ...this.long },
      lagMs: this.lag,
      localLagMs: this.localLag,
      errors: this.errors,
      verify: { ...this.verify },
      byModel,
    }
  }
}
