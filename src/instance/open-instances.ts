/**
 * The instances of this process, kept on `globalThis` so that a freshly
 * imported copy of this module (hot reload, a second bundle) finds the live
 * ones instead of opening the same files again.
 */

/** What the table needs from an instance. */
export interface TrackedInstance {
  readonly dir: string
  /** True once its last handle closed (it may still be closing). */
  readonly closing: boolean
  destroy(): Promise<void>
}

interface InstanceTable {
  /** Opening or open instances, by engine and directory. */
  live: Map<string, { dir: string; instance: Promise<TrackedInstance> }>
  /** Instances still closing: a new open of the same directory waits for them. */
  closing: Map<string, { dir: string; done: Promise<void> }>
}

// Versioned: a future layout gets its own table rather than misreading this one.
const KEY = Symbol.for('meshmirror.instances.v1')

function table(): InstanceTable {
  const g = globalThis as { [KEY]?: InstanceTable }
  g[KEY] ??= { live: new Map(), closing: new Map() }
  return g[KEY]
}

export function instanceKey(engine: string, dir: string): string {
  return `${engine}\u0000${dir}`
}

/**
 * The live instance for `key`, created with `create` when there is none.
 * Waits for an instance of the same key that is still closing, so a reopen
 * right after an un-awaited `close()` never meets our own lock.
 */
export async function joinInstance<T extends TrackedInstance, R>(
  key: string,
  dir: string,
  create: () => Promise<T>,
  use: (instance: T) => R,
): Promise<R> {
  const reg = table()
  for (;;) {
    const closing = reg.closing.get(key)
    if (closing) {
      await closing.done.catch(() => {})
      continue
    }
    let entry = reg.live.get(key)
    if (!entry) {
      const created = { dir, instance: create() as Promise<TrackedInstance> }
      entry = created
      reg.live.set(key, created)
      created.instance.catch(() => {
        if (reg.live.get(key) === created) reg.live.delete(key)
      })
    }
    const instance = (await entry.instance) as T
    // Taken in the same turn as the check, so no close can slip in between.
    if (!instance.closing) return use(instance)
    // Its last handle closed while we waited: wait for the close, then open anew.
  }
}

/** Adds an instance that is not shared (unique directories). */
export function trackInstance(key: string, dir: string, instance: Promise<TrackedInstance>): void {
  const reg = table()
  const entry = { dir, instance }
  reg.live.set(key, entry)
  instance.catch(() => {
    if (reg.live.get(key) === entry) reg.live.delete(key)
  })
}

/** Moves an instance from live to closing until `done` settles. */
export function markClosing(key: string, dir: string, done: Promise<void>): void {
  const reg = table()
  reg.live.delete(key)
  const entry = { dir, done }
  reg.closing.set(key, entry)
  const clear = () => {
    if (reg.closing.get(key) === entry) reg.closing.delete(key)
  }
  done.then(clear, clear)
}

/** Whether this process has `dir` open, opening or closing (probes must not lock against ourselves). */
export function heldByThisProcess(dir: string): boolean {
  const reg = table()
  for (const e of reg.live.values()) if (e.dir === dir) return true
  for (const e of reg.closing.values()) if (e.dir === dir) return true
  return false
}

/** Closes every instance of this process, waiting for those already closing. */
export async function closeAllInstances(): Promise<void> {
  const reg = table()
  const live = [...reg.live.values()].map(async (e) => (await e.instance).destroy())
  const closing = [...reg.closing.values()].map((e) => e.done)
  await Promise.allSettled([...live, ...closing])
}
