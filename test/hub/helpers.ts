import { expect } from 'vitest'
import { openBuiltinStore } from '../../src/engine/open-builtin-store.js'
import type { BuiltinMesh } from '../../src/engine/types.js'
import type { MeshmirrorError } from '../../src/errors.js'
import { type HubLink, startHubLink } from '../../src/hub/hub-link.js'
import type { HubOptions } from '../../src/hub/hub-options.js'
import { removeTempDirs, tempDir } from '../replication/helpers.js'

// What the hub link's tests share: a till (a builtin store linked to the
// hub), waiting on assertions, and closing what a test opened.

/** Retries `check` (assertions) every 50 ms until it passes; after `timeoutMs`, fails with its last error. */
export async function eventually(check: () => Promise<void> | void, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs
  for (;;) {
    try {
      await check()
      return
    } catch (e) {
      if (Date.now() > until) throw e
      await new Promise((r) => setTimeout(r, 50))
    }
  }
}

const opened: { close(): Promise<void> }[] = []

/** Closes `resources` after the test, by `closeOpened`. */
export function closeLater(...resources: { close(): Promise<void> }[]): void {
  opened.push(...resources)
}

/** Closes what the test opened, last first, and removes its temp dirs: `afterEach(closeOpened)`. */
export async function closeOpened(): Promise<void> {
  for (const c of opened.splice(0).reverse()) await c.close()
  removeTempDirs()
}

export interface Till {
  mesh: BuiltinMesh
  link: HubLink
  dir: string
  /** The errors the link reported. */
  errors: MeshmirrorError[]
}

/** A till: a builtin store in `dir` linked to the hub, reconnecting quickly; closed after the test. */
export async function openTill(site: string, options: HubOptions, dir = tempDir()): Promise<Till> {
  const mesh = await openBuiltinStore({ dir, siteId: site })
  const link = startHubLink(mesh, { reconnect: { minMs: 50, maxMs: 500 }, ...options })
  const errors: MeshmirrorError[] = []
  link.on('error', ({ error }) => errors.push(error))
  closeLater(mesh, link)
  return { mesh, link, dir, errors }
}

/** Waits until the link has caught up with the hub. */
export async function caughtUp(link: HubLink, timeoutMs?: number): Promise<void> {
  await eventually(() => expect(link.status().caughtUp).toBe(true), timeoutMs)
}
