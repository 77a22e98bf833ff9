/** A minimal typed event emitter. A listener that throws is reported to `onListenerError`, never to the emitter. */
export class Emitter<Events extends object> {
  private readonly listeners = new Map<keyof Events, Set<(payload: never) => void>>()

  constructor(private readonly onListenerError: (error: unknown, event: keyof Events) => void) {}

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

  emit<E extends keyof Events>(event: E, payload: Events[E]): void {
    for (const l of [...(this.listeners.get(event) ?? [])]) {
      try {
        ;(l as (p: Events[E]) => void)(payload)
      } catch (error) {
        this.onListenerError(error, event)
      }
    }
  }
}
