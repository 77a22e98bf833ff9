import { pull } from './catch-up.js'
import type { OutboxDrain } from './outbox-drain.js'
import type { SyncRuntime } from './runtime.js'
import type { ScopeFollower } from './scope-follower.js'

/**
 * The last exchange of a closing coordinator, once nothing starts new work:
 * sends the captured local changes, stops observing, takes in what changed
 * in the mesh since the last signal (so the stored cursors are current) and
 * writes what is queued. Only a coordinator that was live exchanges; a
 * failed send or take-in is reported, and closing goes on.
 */
export async function settle(
  rt: SyncRuntime,
  drain: OutboxDrain,
  follower: ScopeFollower,
  wasLive: boolean,
): Promise<void> {
  if (wasLive) {
    try {
      await drain.drainAll()
    } catch (error) {
      rt.fail('close', error)
    }
  }
  for (const b of rt.bindings.values()) await follower.unfollow(b)
  // Take in what changed since the last signal, so the stored cursors are current.
  if (wasLive) {
    for (const b of rt.bindings.values()) {
      if (!b.receives) continue
      try {
        await pull(rt, b, undefined, { ignoreStop: true })
      } catch (error) {
        rt.fail('close', error, b.model)
      }
    }
  }
  await rt.queue.close()
}
