import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { BuiltinMesh, RemoteChange } from '../../src/engine/types.js'

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

function sortKeys<T>(o: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}

/** A change's merge state with clock indices resolved, independent of encoding order. */
export function canonicalChange(c: RemoteChange): unknown {
  const { t } = c.meta
  return {
    key: `${c.collection}/${c.id}`,
    doc: c.doc === null ? null : sortKeys(c.doc),
    written: t[c.meta.i],
    removed: c.meta.d === undefined ? null : t[c.meta.d],
    created: t[c.meta.c ?? c.meta.i],
    kept: sortKeys(c.meta.h ?? {}),
    fields: sortKeys(Object.fromEntries(Object.entries(c.meta.f).map(([f, k]) => [f, t[k]]))),
    counters: sortKeys(
      Object.fromEntries(Object.entries(c.meta.n ?? {}).map(([f, n]) => [f, { b: n.b ?? null, s: sortKeys(n.s) }])),
    ),
    versions: sortKeys(c.meta.v),
  }
}

/**
 * Everything a replica holds, tombstones and merge metadata included, plus
 * its version vector: equal on converged replicas, and only then.
 */
export async function fullState(mesh: BuiltinMesh): Promise<string> {
  const changes: RemoteChange[] = []
  let after = 0
  for (;;) {
    const chunk = await mesh.changesFor({}, after, 1000)
    changes.push(...chunk.changes)
    after = chunk.cursor
    if (chunk.complete) break
  }
  const docs = changes
    .map(canonicalChange)
    .sort((a, b) => ((a as { key: string }).key < (b as { key: string }).key ? -1 : 1))
  return JSON.stringify({ docs, vv: sortKeys(await mesh.versionVector()) })
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

/** Waits until all meshes hold the same documents, tombstones, merge metadata and version vectors. */
export async function converged(meshes: readonly BuiltinMesh[], timeoutMs = 15_000): Promise<void> {
  let last: string[] = []
  try {
    await eventually(
      async () => {
        last = await Promise.all(meshes.map((m) => fullState(m)))
        return last.every((s) => s === last[0])
      },
      timeoutMs,
      'convergence',
    )
  } catch (error) {
    throw new Error(`${(error as Error).message}; states:\n${last.join('\n')}`)
  }
}
