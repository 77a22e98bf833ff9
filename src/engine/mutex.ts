/** Runs async tasks one at a time, in call order. */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve()

  run<T>(task: () => T | Promise<T>): Promise<T> {
    const result = this.tail.then(task)
    // The chain continues whether the task succeeds or fails.
    this.tail = result.catch(() => undefined)
    return result
  }
}
