/**
 * The rate per second of a growing counter, measured over intervals of at
 * least `minIntervalMs`: a reading sooner than that after the last
 * measurement returns the last rate, so frequent readers do not turn a
 * single change into a spike.
 */
export class RateMeter {
  private at: number
  private count: number
  private perSecond = 0

  /** `at` is when counting started (ms, e.g. `Date.now()`), from a count of 0. */
  constructor(
    at: number,
    private readonly minIntervalMs = 500,
  ) {
    this.at = at
    this.count = 0
  }

  /** The counter reads `count` at time `now` (ms): returns the rate per second. */
  read(count: number, now: number): number {
    const elapsedMs = now - this.at
    if (elapsedMs >= this.minIntervalMs) {
      this.perSecond = (count - this.count) / (elapsedMs / 1000)
      this.at = now
      this.count = count
    }
    return this.perSecond
  }
}
