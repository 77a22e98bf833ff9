/**
 * Runs async sections one at a time, in call order.
 *
 * A section that throws or rejects fails only its own caller: the next
 * section still runs.
 */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve()
  private waiting = 0

  /** Sections queued or running. */
  get pending(): number {
    return this.waiting
  }

  /** Runs `fn` once every section queued before it has settled; resolves or rejects with its outcome. */
  run<T>(fn: () => T | Promise<T>): Promise<T> {
    this.waiting++
    const next = this.tail.then(fn)
    // The chain continues whether the section succeeds or fails.
    this.tail = next.then(
      () => this.waiting--,
      () => this.waiting--,
    )
    return next
  }
}
