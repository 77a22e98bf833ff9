import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, expect, it, vi } from 'vitest'
import { encodedChanges } from '../engine/encoded-changes.js'
import { openBuiltinStore } from '../engine/open-builtin-store.js'
import type { BuiltinMesh } from '../engine/types.js'
import { OutboundStream } from './outbound-stream.js'
import { encodeChanges } from './protocol.js'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

async function open(): Promise<BuiltinMesh> {
  const dir = mkdtempSync(join(tmpdir(), 'mm-outbound-'))
  dirs.push(dir)
  return openBuiltinStore({ dir, siteId: 'sender' })
}

const turns = async (n: number) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r))
}

/** The frame a stream sends for the chunk the table gives after `after`. */
async function frameFromTable(mesh: BuiltinMesh, n: number, after: number, limit: number) {
  const c = await encodedChanges(mesh, {}, after, limit)
  return { frame: encodeChanges(n, c.changes, c.cursor, c.complete, c.complete ? c.versionVector : undefined), c }
}

it('reads the next chunks of a catch-up while the window is full, and sends them as the table gives them then', async () => {
  const mesh = await open()
  // More rows than a store keeps from its last commits: every chunk is read from the table.
  await mesh.upsert(
    'items',
    Array.from({ length: 300 }, (_, i) => ({ _id: `i${i}`, n: i })),
  )
  const reads = vi.spyOn(mesh as unknown as { encodedChangesFor: () => unknown }, 'encodedChangesFor')
  const frames: string[] = []
  const errors: unknown[] = []
  const out = new OutboundStream({
    mesh,
    sendFrame: (f) => frames.push(f),
    chunkSize: 5,
    window: 2,
    maxFrame: 1 << 20,
    isClosed: () => false,
    onError: (e) => errors.push(e),
  })
  out.start({}, 0)
  await turns(10)
  expect(frames).toHaveLength(2)
  // The two chunks in flight and the two after them.
  expect(reads).toHaveBeenCalledTimes(4)
  let after = 0
  for (let n = 1; n <= 2; n++) {
    const { frame, c } = await frameFromTable(mesh, n, after, 5)
    expect(frames[n - 1]).toBe(frame)
    after = c.cursor
  }
  // The ack frees the window: the chunk read ahead goes out at once.
  out.onAck(1)
  expect(frames).toHaveLength(3)
  expect(frames[2]).toBe((await frameFromTable(mesh, 3, after, 5)).frame)
  after = JSON.parse(frames[2]!).cursor
  await turns(10)

  // A commit since the read: the chunks read ahead are not sent, the table is read again.
  await mesh.upsert('items', [{ _id: `i${20}`, n: -1 }])
  out.onAck(3)
  await turns(10)
  const fresh = await frameFromTable(mesh, 4, after, 5)
  expect(frames[3]).toBe(fresh.frame)
  expect(frames[4]).toBe((await frameFromTable(mesh, 5, fresh.c.cursor, 5)).frame)
  expect(errors).toEqual([])
  await mesh.close()
})
