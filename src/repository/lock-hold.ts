/**
 * How long a write transaction holds the database's write lock. An app
 * writing meanwhile waits on its busy timeout, so a transaction that holds
 * the lock longer than a threshold is reported with what it spent the time
 * on: CPU in this process (the batch's own work), the commit (writing the
 * WAL), or neither (the process was not running: an overloaded machine, a
 * garbage collection, a stopped process).
 */

/** A write transaction that held the write lock longer than the repository's `longTransactionMs`. */
export interface LongTransaction {
  /** From taking the write lock to letting it go, ms. */
  heldMs: number
  /** CPU time this process used meanwhile, ms (all of its threads). */
  cpuMs: number
  /** Of `heldMs`, the commit's share, ms. */
  commitMs: number
  /** `remote` for a batch of received changes, `local` for any other transaction. */
  origin: 'remote' | 'local'
  /** Records in the batch (received changes only). */
  records?: number
  /** When it let the lock go, epoch ms. */
  at: number
  /** When it let the lock go on the system's monotonic clock, ms: comparable with other processes' (e.g. an app's) timings. */
  monotonicMs: number
}

const cpuNow = (): number => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}

const monotonicNow = (): number => Number(process.hrtime.bigint() / 1_000_000n)

/** Times one hold of the write lock: `begun` once it is taken, `committing` before COMMIT, `ended` after it is let go. */
export class LockHold {
  private from = 0
  private cpuFrom = 0
  private commitFrom = 0

  begun(): void {
    this.from = performance.now()
    this.cpuFrom = cpuNow()
    this.commitFrom = 0
  }

  committing(): void {
    this.commitFrom = performance.now()
  }

  /** The hold just ended, as a {@link LongTransaction} when it lasted `thresholdMs` or more (undefined if never begun). */
  ended(
    thresholdMs: number,
    origin: LongTransaction['origin'],
    records?: number,
  ): { heldMs: number; long?: LongTransaction } | undefined {
    if (this.from === 0) return undefined
    const end = performance.now()
    const heldMs = end - this.from
    const commitFrom = this.commitFrom
    this.from = 0
    if (heldMs < thresholdMs) return { heldMs }
    return {
      heldMs,
      long: {
        heldMs: Math.round(heldMs),
        cpuMs: Math.round(cpuNow() - this.cpuFrom),
        commitMs: commitFrom === 0 ? 0 : Math.round(end - commitFrom),
        origin,
        ...(records !== undefined ? { records } : {}),
        at: Date.now(),
        monotonicMs: monotonicNow(),
      },
    }
  }
}
