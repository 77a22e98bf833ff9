import type { MeshStore, ObserveOptions, Observer, ObserverChange } from '../mesh-store.js'
import type { Query } from '../query.js'

/** Values pushed by callbacks, read in order; a read waits for the next one, up to a deadline. */
export class Inbox<T> {
  private readonly queue: T[] = []
  private readonly waiters: ((item: T) => void)[] = []
  /** How many items were pushed in all. */
  received = 0

  constructor(
    private readonly timeoutMs: number,
    private readonly what: string,
  ) {}

  readonly push = (item: T): void => {
    this.received++
    const waiter = this.waiters.shift()
    if (waiter) waiter(item)
    else this.queue.push(item)
  }

  next(): Promise<T> {
    if (this.queue.length > 0) return Promise.resolve(this.queue.shift() as T)
    return new Promise((resolve, reject) => {
      const deliver = (item: T) => {
        clearTimeout(timer)
        resolve(item)
      }
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(deliver), 1)
        reject(new Error(`no ${this.what} within ${this.timeoutMs} ms`))
      }, this.timeoutMs)
      this.waiters.push(deliver)
    })
  }
}

/** An observer whose deliveries are read one by one. */
export class Watch {
  readonly observer: Observer
  private readonly inbox: Inbox<ObserverChange>

  constructor(mesh: MeshStore, query: Query, timeoutMs: number, options?: ObserveOptions) {
    this.inbox = new Inbox(timeoutMs, `observer delivery for ${JSON.stringify(query)}`)
    this.observer = mesh.observe(query, this.inbox.push, options)
  }

  /** Deliveries made so far, read or not. */
  get received(): number {
    return this.inbox.received
  }

  /** The next delivery. */
  next(): Promise<ObserverChange> {
    return this.inbox.next()
  }

  /** Reads deliveries until one satisfies `done`, and returns it. */
  async until(done: (c: ObserverChange) => boolean): Promise<ObserverChange> {
    for (;;) {
      const c = await this.next()
      if (done(c)) return c
    }
  }
}

/** A promise resolved from outside: a gate a listener waits on. */
export function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void
  const promise = new Promise<void>((r) => {
    resolve = r
  })
  return { promise, resolve }
}

/** Lets every callback already queued on the event loop run once. */
export function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}
