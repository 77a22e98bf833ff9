import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, expect, it } from 'vitest'
import { openBuiltinStore } from '../engine/open-builtin-store.js'
import type { BuiltinMesh, RemoteChange } from '../engine/types.js'
import type { ErrorCode } from '../errors.js'
import { InboundStream } from './inbound-stream.js'
import { CollectionBudget, DEFAULT_PEER_LIMITS } from './peer-limits.js'
import type { Message } from './protocol.js'

type Changes = Extract<Message, { t: 'changes' }>

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

async function open(siteId: string): Promise<BuiltinMesh> {
  const dir = mkdtempSync(join(tmpdir(), 'mm-inbound-'))
  dirs.push(dir)
  return openBuiltinStore({ dir, siteId })
}

/** A sender's store cut into chunks of `size`, numbered from 1, as a link would send them. */
async function chunksOf(sender: BuiltinMesh, size: number): Promise<Changes[]> {
  const out: Changes[] = []
  let after = 0
  for (;;) {
    const c = await sender.changesFor({}, after, size)
    out.push({
      t: 'changes',
      n: out.length + 1,
      changes: c.changes,
      cursor: c.cursor,
      complete: c.complete,
      ...(c.versionVector ? { vv: c.versionVector } : {}),
    })
    after = c.cursor
    if (c.complete) return out
  }
}

function stream(mesh: BuiltinMesh, maxDocumentBytes = DEFAULT_PEER_LIMITS.maxDocumentBytes) {
  const acks: [number, number][] = []
  const rejected: [string, ErrorCode][] = []
  const completed: unknown[] = []
  let closed = false
  const s = new InboundStream({
    mesh,
    from: 'sender',
    window: 8,
    limits: { ...DEFAULT_PEER_LIMITS, maxDocumentBytes },
    collections: new CollectionBudget(() => mesh.collections(), 100),
    sendAck: (n, cursor) => acks.push([n, cursor]),
    onComplete: (vv) => completed.push(vv),
    onReject: (reason, code) => {
      rejected.push([reason, code])
      closed = true
    },
    onThrottle: () => {},
    isClosed: () => closed,
  })
  return { s, acks, rejected, completed }
}

const settled = async (check: () => boolean) => {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 10))
}

it('applies chunks that wait together, records the last cursor, and acknowledges them with one ack', async () => {
  const sender = await open('sender')
  await sender.upsert(
    'items',
    Array.from({ length: 40 }, (_, i) => ({ _id: `i${i}`, n: i })),
  )
  const chunks = await chunksOf(sender, 10)
  expect(chunks).toHaveLength(4)
  const receiver = await open('receiver')
  const { s, acks, rejected, completed } = stream(receiver)
  // All four arrive before the first is applied.
  for (const c of chunks) s.receive(c)
  await settled(() => acks.at(-1)?.[0] === 4)
  expect(rejected).toEqual([])
  expect(acks).toEqual([[4, chunks[3]!.cursor]])
  expect(completed).toEqual([await sender.versionVector()])
  expect(await receiver.count({ collection: 'items' })).toBe(40)
  expect(await receiver.peerCursor('sender')).toBe(chunks[3]!.cursor)
  expect(s.changesReceived).toBe(40)
  await receiver.close()
  await sender.close()
})

it('applies and acknowledges the chunks before one that breaks a limit, and nothing of that one', async () => {
  const sender = await open('sender')
  await sender.upsert(
    'items',
    Array.from({ length: 20 }, (_, i) => ({ _id: `i${i}`, n: i })),
  )
  await sender.upsert('items', [{ _id: 'big', text: 'x'.repeat(5000) }])
  await sender.upsert(
    'items',
    Array.from({ length: 10 }, (_, i) => ({ _id: `j${i}`, n: i })),
  )
  const chunks = await chunksOf(sender, 10)
  expect(chunks.map((c) => c.changes.length)).toEqual([10, 10, 10, 1])
  const receiver = await open('receiver')
  const { s, acks, rejected } = stream(receiver, 2000)
  for (const c of chunks) s.receive(c)
  await settled(() => rejected.length > 0)
  expect(rejected).toHaveLength(1)
  expect(rejected[0]![1]).toBe('PEER_LIMIT_EXCEEDED')
  expect(acks).toEqual([[2, chunks[1]!.cursor]])
  expect(await receiver.count({ collection: 'items' })).toBe(20)
  expect(await receiver.get('items', 'big')).toBeUndefined()
  expect(await receiver.peerCursor('sender')).toBe(chunks[1]!.cursor)
  await receiver.close()
  await sender.close()
})

it('refuses a malformed change alone: what came before it is applied', async () => {
  const sender = await open('sender')
  await sender.upsert(
    'items',
    Array.from({ length: 10 }, (_, i) => ({ _id: `i${i}`, n: i })),
  )
  const [good] = await chunksOf(sender, 10)
  const receiver = await open('receiver')
  const { s, acks, rejected } = stream(receiver)
  s.receive(good!)
  s.receive({
    t: 'changes',
    n: 2,
    changes: [null as unknown as RemoteChange],
    cursor: good!.cursor + 1,
    complete: false,
  })
  await settled(() => rejected.length > 0)
  expect(rejected[0]![1]).toBe('PROTOCOL_ERROR')
  expect(acks).toEqual([[1, good!.cursor]])
  expect(await receiver.count({ collection: 'items' })).toBe(10)
  await receiver.close()
  await sender.close()
})

it('stores each document of chunks applied together as its own JSON, removals and merges among them', async () => {
  const sender = await open('sender')
  await sender.upsert(
    'items',
    Array.from({ length: 12 }, (_, i) => ({ _id: `i${i}`, n: i, s: `é${'x'.repeat(i)}` })),
  )
  await sender.remove('items', ['i1', 'i4', 'i5'])
  // Removals between creations: a chunk holds documents after a removal.
  for (let i = 0; i < 12; i++) {
    await sender.upsert('items', [{ _id: `k${i}`, n: i }])
    if (i % 3 === 1) await sender.remove('items', [`k${i - 1}`])
  }
  await sender.upsert('items', [{ _id: 'i7', n: 70, added: { deep: [1, 'two'] } }])
  await sender.upsert('other', [{ _id: 'o', v: null }])
  const chunks = await chunksOf(sender, 3)
  const receiver = await open('receiver')
  // One document held already: it is merged, not created.
  await receiver.upsert('items', [{ _id: 'i9', mine: true }])
  const { s, acks, rejected } = stream(receiver)
  for (const c of chunks) s.receive(c)
  await settled(() => acks.at(-1)?.[0] === chunks.length || rejected.length > 0)
  expect(rejected).toEqual([])
  expect(acks.length).toBeLessThan(chunks.length)
  for (const collection of ['items', 'other']) {
    const want = await sender.find({ collection })
    const got = await receiver.find({ collection })
    expect(got.filter((d) => d._id !== 'i9')).toEqual(want.filter((d) => d._id !== 'i9'))
  }
  expect(await receiver.get('items', 'i9')).toBeDefined()
})
