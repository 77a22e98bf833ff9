import type { Logger } from '../logger.js'

/**
 * A small typed event emitter, the one every layer uses.
 *
 * One policy for a listener that throws: the error is logged through the
 * logger given here (and handed to `onListenerError` when the owner also
 * surfaces it, for example as an `error` event or a health field); it never
 * breaks the emitter, the other listeners or the code that emitted.
 *
 * @example
 * const events = new Emitter<{ closed: { dir: string } }>(logger)
 * const off = events.on('closed', ({ dir }) => console.log(dir))
 * events.emit('closed', { dir: '/tmp/a' })
 * off()
 */
export class Emitter<Events extends object> {
  private readonly listeners = new Map<keyof Events, Set<(payload: never) => void>>()

  constructor(
    private readonly logger: Logger,
    private readonly onListenerError?: (error: unknown, event: keyof Events) => void,
  ) {}

  /** Adds a listener; returns the function that removes it. */
  on<E extends keyof Events>(event: E, listener: (payload: Events[E]) => void): () => void {
    let set = this.listeners.get(event)
    if (!set) {
      set = new Set()
      this.listeners.set(event, set)
    }
    const l = listener as (payload: never) => void
    set.add(l)
    return () => {
      set.delete(l)
    }
  }

  /** Calls the event's listeners in the order they were added: those present when the emit began. */
  emit<E extends keyof Events>(event: E, payload: Events[E]): void {
    const set = this.listeners.get(event)
    if (!set || set.size === 0) return
    for (const l of [...set]) {
      try {
        ;(l as (payload: Events[E]) => void)(payload)
      } catch (error) {
        this.logger.error('event listener failed', { event: String(event), error: String(error) })
        this.onListenerError?.(error, event)
      }
    }
  }

  /** Whether the event has a listener (to skip building a payload nobody reads). */
  has(event: keyof Events): boolean {
    return (this.listeners.get(event)?.size ?? 0) > 0
  }

  /** Removes every listener (on close). */
  clear(): void {
    this.listeners.clear()
  }
}
