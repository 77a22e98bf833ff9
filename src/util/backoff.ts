/** Bounds of an exponential backoff. */
export interface BackoffOptions {
  /** The wait before the first retry (attempt 0). */
  initialMs: number
  /** The cap the doubling stops at. */
  maxMs: number
  /**
   * Pick the wait at random in the upper half (`[base / 2, base]`), so
   * processes that failed together do not retry in lockstep.
   */
  jitter?: boolean
}

/**
 * How long to wait before retry `attempt` (0-based): `initialMs` doubled per
 * attempt, capped at `maxMs`, optionally jittered.
 *
 * @example
 * backoffMs(3, { initialMs: 50, maxMs: 5000 }) // 400
 */
export function backoffMs(attempt: number, options: BackoffOptions): number {
  // The exponent is capped only so that a long run of failures cannot overflow to Infinity (0 * Infinity is NaN).
  const base = Math.min(options.maxMs, options.initialMs * 2 ** Math.min(attempt, 52))
  return options.jitter ? base / 2 + Math.random() * (base / 2) : base
}
