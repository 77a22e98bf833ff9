/**
 * Hybrid logical clock. A timestamp is `(wall ms, counter, site)` encoded as
 * a fixed-width string so that string order is timestamp order:
 * 9 base-36 digits of wall time, 4 of counter, then the site id.
 */

const WALL_DIGITS = 9
const COUNTER_DIGITS = 4
const PREFIX = WALL_DIGITS + COUNTER_DIGITS
const MAX_COUNTER = 36 ** COUNTER_DIGITS - 1
const MAX_WALL = 36 ** WALL_DIGITS - 1
const CLOCK_RE = /^[0-9a-z]{13}[A-Za-z0-9_-]{1,64}$/

/** True when `s` is a well-formed clock string. */
export function isClock(s: unknown): s is string {
  return typeof s === 'string' && CLOCK_RE.test(s)
}

/** The wall-time part of a clock, in ms. */
export function clockWall(clock: string): number {
  return Number.parseInt(clock.slice(0, WALL_DIGITS), 36)
}

/** The site that issued a clock. */
export function clockSite(clock: string): string {
  return clock.slice(PREFIX)
}

function encode(wall: number, counter: number, site: string): string {
  return wall.toString(36).padStart(WALL_DIGITS, '0') + counter.toString(36).padStart(COUNTER_DIGITS, '0') + site
}

/** Compares two clocks: negative, zero or positive. */
export function compareClocks(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** The later of two clocks (either may be undefined). */
export function maxClock(a: string | undefined, b: string | undefined): string | undefined {
  if (a === undefined) return b
  if (b === undefined) return a
  return a >= b ? a : b
}

export interface ClockOptions {
  site: string
  now: () => number
  /** How far ahead of `now()` a received clock may move ours. */
  maxDriftMs: number
}

/** A site's clock: issues strictly increasing timestamps and absorbs received ones. */
export class HybridClock {
  private wall = 0
  private counter = 0
  private driftExceeded = 0
  // The encoded wall time of the last tick, reused while the wall time stays.
  private prefixWall = -1
  private prefix = ''
  private readonly site: string
  private readonly now: () => number
  private readonly maxDriftMs: number

  constructor(options: ClockOptions, last?: string) {
    this.site = options.site
    this.now = options.now
    this.maxDriftMs = options.maxDriftMs
    if (last) this.restore(last)
  }

  // Our own last clock, persisted: resumed from as is, whatever the wall time
  // says now, so clocks keep increasing across a restart after the wall clock went back.
  private restore(last: string): void {
    this.wall = clockWall(last)
    this.counter = Number.parseInt(last.slice(WALL_DIGITS, PREFIX), 36)
  }

  /** A new timestamp, later than every one issued or observed so far. */
  tick(): string {
    const now = Math.min(Math.floor(this.now()), MAX_WALL)
    if (now > this.wall) {
      this.wall = now
      this.counter = 0
    } else if (this.counter < MAX_COUNTER) {
      this.counter++
    } else {
      this.wall++
      this.counter = 0
    }
    if (this.wall !== this.prefixWall) {
      this.prefixWall = this.wall
      this.prefix = this.wall.toString(36).padStart(WALL_DIGITS, '0')
    }
    return this.prefix + this.counter.toString(36).padStart(COUNTER_DIGITS, '0') + this.site
  }

  /**
   * Moves the clock past a received timestamp, but never more than
   * `maxDriftMs` ahead of our wall time. Returns false (and counts it) when
   * the received clock was beyond that bound.
   */
  observe(clock: string): boolean {
    let wall = clockWall(clock)
    const counter = Number.parseInt(clock.slice(WALL_DIGITS, PREFIX), 36)
    let ok = true
    const bound = Math.floor(this.now()) + this.maxDriftMs
    let c = counter
    if (wall > bound) {
      this.driftExceeded++
      ok = false
      wall = bound
      c = 0
    }
    if (wall > this.wall || (wall === this.wall && c > this.counter)) {
      this.wall = wall
      this.counter = c
    }
    return ok
  }

  /**
   * Moves the clock past the latest clock of a document a local write is
   * about to change, whatever the drift bound: the write comes after what
   * it replaces, so it must win over it, and a clock behind another
   * device's (or that device's ahead) must not make it lose.
   */
  follow(clock: string): void {
    const wall = clockWall(clock)
    const counter = Number.parseInt(clock.slice(WALL_DIGITS, PREFIX), 36)
    if (wall > this.wall || (wall === this.wall && counter > this.counter)) {
      this.wall = wall
      this.counter = counter
    }
  }

  /** The latest timestamp issued or observed (for persisting). */
  last(): string {
    return encode(this.wall, this.counter, this.site)
  }

  /** How many received clocks were beyond the drift bound. */
  get driftExceededCount(): number {
    return this.driftExceeded
  }
}
