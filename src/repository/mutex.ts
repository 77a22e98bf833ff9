/** Runs async sections one at a time, in call order. */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve()
  private waiting = 0

  /** Sections queued or running. */
  get pending(): number {
    return this.waiting
  }

  run<T>(fn: () => T | Promise<T>): Promise<T> {
    this.waiting++
    const next = this.tail.then(fn)
    this.tail = next.then(
      () => this.waiting--,
      () => this.waiting--,
    )
    return next
  }
}
