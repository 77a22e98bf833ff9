import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { MeshmirrorError } from '../errors.js'
import { STORE_FILE } from './database.js'
import { openBuiltinStore } from './open-builtin-store.js'
import type { BuiltinMesh } from './types.js'

const dirs: string[] = []
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mm-ckpt-'))
  dirs.push(dir)
  return dir
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

/** Single writes of 3 KB documents: about 1,500 WAL pages in all, past the 1000 that call for a checkpoint. */
async function fill(mesh: BuiltinMesh): Promise<void> {
  for (let i = 0; i < 400; i++) {
    await mesh.upsert('items', [{ _id: `d${i}`, body: 'x'.repeat(3000) }])
    if (i % 10 === 0) await new Promise((r) => setImmediate(r))
  }
}

describe('WAL checkpoints', () => {
  it('run in the store’s worker; close stops it and the store reopens whole', async () => {
    const dir = tempDir()
    let mesh = await openBuiltinStore({ dir })
    await fill(mesh)
    await vi.waitFor(async () => expect((await mesh.stats()).backgroundCheckpoints).toBeGreaterThan(0), {
      timeout: 10_000,
    })
    await mesh.close()
    // The worker's connection was closed first: the writer's close, the last, copied the WAL and removed it.
    expect(existsSync(join(dir, `${STORE_FILE}-wal`))).toBe(false)
    mesh = await openBuiltinStore({ dir })
    expect(await mesh.count({ collection: 'items' })).toBe(400)
    await mesh.close()
    // The directory can go and come back at once.
    rmSync(dir, { recursive: true })
    mesh = await openBuiltinStore({ dir })
    expect(await mesh.count({ collection: 'items' })).toBe(0)
    await mesh.close()
  })

  it("stay on the writer's commits with checkpoints: 'inline'", async () => {
    const mesh = await openBuiltinStore({ dir: tempDir(), checkpoints: 'inline' })
    await fill(mesh)
    expect((await mesh.stats()).backgroundCheckpoints).toBe(0)
    expect(await mesh.count({ collection: 'items' })).toBe(400)
    await mesh.close()
  })

  it('refuses an unknown checkpoints setting', async () => {
    const error = await openBuiltinStore({ dir: tempDir(), checkpoints: 'later' as 'inline' }).catch((e) => e)
    expect(error).toBeInstanceOf(MeshmirrorError)
    expect(error.code).toBe('INVALID_OPTIONS')
  })
})
