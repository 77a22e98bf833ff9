import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { BuiltinMesh } from '../../src/engine/types.js'

const dirs: string[] = []

export function tempDir(prefix = 'mm-repl-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix))
  dirs.push(d)
  return d
}

export function removeTempDirs(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
}

/** Every document of every collection, sorted: what must be equal on converged replicas. */
export async function dump(mesh: BuiltinMesh): Promise<Record<string, unknown[]>> {
  const out: Record<string, unknown[]> = {}
  for (const c of await mesh.collections()) out[c] = await mesh.find({ collection: c })
  return out
}

/** Polls `check` until it returns true; fails after `timeoutMs`. */
export async function eventually(
  check: () => Promise<boolean> | boolean,
  timeoutMs = 15_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

/** Waits until all meshes hold the same documents. */
export async function converged(meshes: readonly BuiltinMesh[], timeoutMs = 15_000): Promise<void> {
  await eventually(
    async () => {
      const dumps = await Promise.all(meshes.map((m) => dump(m)))
      const first = JSON.stringify(dumps[0])
      return dumps.every((d) => JSON.stringify(d) === first)
    },
    timeoutMs,
    'convergence',
  )
}
