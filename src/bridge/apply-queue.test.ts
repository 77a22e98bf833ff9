import { describe, expect, it } from 'vitest'
import { type ApplyItem, ApplyQueue, type ApplyQueueOptions, type CheckpointMark } from './apply-queue.js'

interface Written {
  items: ApplyItem[]
  marks: CheckpointMark[]
  at: number
}

function queue(options: Partial<ApplyQueueOptions> = {}) {
  const written: Written[] = []
  const errors: unknown[] = []
  const q = new ApplyQueue({
    batchSize: 500,
    maxBatchDelayMs: 10,
    delayBetweenBatches: 0,
    transactionPerRow: false,
    highWaterMark: 2000,
    write: async (items, marks) => {
      written.push({ items, marks, at: performance.now() })
    },
    onError: (e) => errors.push(e),
    isFatal: () => false,
    ...options,
  })
  return { q, written, errors }
}

const item = (id: string, hash = 'h'): ApplyItem => ({
  model: 'm',
  id,
  kind: 'upsert',
  record: { id },
  hash,
  doc: null,
  receivedAt: performance.now(),
})

/** A queue that records each batch's size; a write lasts `ms()` and reports holding the lock `held` ms when given. */
function sizing(batchSize: number, targetBatchMs: number, ms: () => number, held?: number) {
  const sizes: number[] = []
  const { q } = queue({
    batchSize,
    targetBatchMs,
    write: async (items) => {
      sizes.push(items.length)
      const wait = ms()
      if (wait > 0) await new Promise((r) => setTimeout(r, wait))
      return held
    },
  })
  return { q, sizes }
}

describe('apply queue', () => {
  it('stops retrying a batch that keeps failing once it closes, instead of holding the close forever', async () => {
    const retries: number[] = []
    let attempts = 0
    const { q } = queue({
      write: async () => {
        attempts++
        throw new Error('no such table')
      },
      onError: (_e, retryInMs) => retries.push(retryInMs),
    })
    q.put(item('a'))
    while (attempts < 2) await new Promise((r) => setTimeout(r, 5))
    await q.close()
    expect(retries.slice(0, -1).every((ms) => ms > 0)).toBe(true)
    expect(retries.at(-1)).toBe(-1)
  })

  it('writes no checkpoint after a batch it dropped while closing: a later one would move past its changes', async () => {
    let fail = true
    const { q, written } = queue({
      batchSize: 1,
      write: async (items, marks) => {
        if (fail) {
          fail = false
          throw new Error('database is locked')
        }
        written.push({ items, marks, at: performance.now() })
      },
    })
    q.put(item('a'))
    q.mark({ key: 'k', value: 'after-a' })
    q.put(item('b'))
    q.mark({ key: 'k', value: 'after-b' })
    const closing = q.close()
    q.mark({ key: 'k', value: 'later' })
    await closing
    // `a` was dropped with its checkpoint; `b` is written, but no checkpoint past `a` is.
    expect(written.map((w) => w.items.map((i) => i.id).join())).toEqual(['b'])
    expect(written.flatMap((w) => w.marks)).toEqual([])
  })

  it('coalesces changes of the same document, the latest winning', async () => {
    const { q, written } = queue()
    q.put(item('a', '1'))
    q.put(item('b', '1'))
    q.put(item('a', '2'))
    expect(q.find('m', 'a')?.hash).toBe('2')
    expect(q.depth).toBe(2)
    await q.idle()
    expect(written.flatMap((w) => w.items.map((i) => `${i.id}${i.hash}`))).toEqual(['a2', 'b1'])
  })

  it('writes batches bounded by size', async () => {
    const { q, written } = queue({ batchSize: 500 })
    for (let i = 0; i < 1200; i++) q.put(item(`d${i}`))
    await q.idle()
    expect(written.map((w) => w.items.length)).toEqual([500, 500, 200])
  })

  it('writes a lone change at once after a quiet spell, and gathers the changes streaming in behind it', async () => {
    const { q, written } = queue({ maxBatchDelayMs: 50 })
    q.put(item('a'))
    await new Promise((r) => setImmediate(r))
    q.put(item('b'))
    await new Promise((r) => setImmediate(r))
    q.put(item('c'))
    await q.idle()
    expect(written.map((w) => w.items.map((i) => i.id))).toEqual([['a'], ['b', 'c']])
  })

  it('does not hold a lone change for the batch delay', async () => {
    // A delay far beyond the test's timeout: only a write at once lets idle() resolve in time.
    const { q, written } = queue({ maxBatchDelayMs: 60_000 })
    q.put(item('a'))
    await q.idle()
    expect(written.map((w) => w.items.map((i) => i.id))).toEqual([['a']])
  })

  it('commits a checkpoint only with the last change queued before it, the latest per key', async () => {
    const { q, written } = queue({ batchSize: 2 })
    q.put(item('a'))
    q.put(item('b'))
    q.put(item('c'))
    q.mark({ key: 'k', value: 'after-c' })
    q.put(item('d'))
    q.mark({ key: 'k', value: 'after-d' })
    // A newer version of an early document keeps its place: the first mark waits for it too.
    q.put(item('a', 'newer'))
    await q.idle()
    const batches = written.map((w) => [w.items.map((i) => i.id).join(''), w.marks.map((m) => m.value).join()])
    expect(batches).toEqual([
      ['ab', ''],
      ['cd', 'after-d'],
    ])
    expect(written[0]!.items[0]!.hash).toBe('newer')
  })

  it('holds producers back above the high-water mark', async () => {
    let release!: () => void
    const gate = new Promise<void>((r) => {
      release = r
    })
    const { q } = queue({
      batchSize: 10,
      highWaterMark: 20,
      write: async () => {
        await gate
      },
    })
    for (let i = 0; i < 30; i++) q.put(item(`d${i}`))
    let room = false
    const waiting = q.belowHighWater().then(() => {
      room = true
    })
    await new Promise((r) => setTimeout(r, 20))
    expect(room).toBe(false)
    release()
    await waiting
    expect(q.depth).toBeLessThan(20)
    await q.idle()
  })

  it('retries a failed batch without losing newer changes', async () => {
    let fail = true
    const seen: string[][] = []
    const { q, errors } = queue({
      write: async (items) => {
        seen.push(items.map((i) => `${i.id}${i.hash}`))
        if (fail) {
          fail = false
          q.put(item('a', 'newer'))
          throw new Error('disk hiccup')
        }
      },
    })
    q.put(item('a', 'old'))
    q.put(item('b', 'old'))
    await q.idle()
    expect(errors).toHaveLength(1)
    expect(seen.map((batch) => [...batch].sort())).toEqual([
      ['aold', 'bold'],
      ['anewer', 'bold'],
    ])
  })

  it("reproduces the seed's policy: small batches, a row per transaction, a pause between batches", async () => {
    const { q, written } = queue({ batchSize: 5, transactionPerRow: true, delayBetweenBatches: 40 })
    for (let i = 0; i < 10; i++) q.put(item(`d${i}`))
    await q.idle()
    expect(written).toHaveLength(10)
    expect(written.every((w) => w.items.length === 1)).toBe(true)
    expect(written[5]!.at - written[4]!.at).toBeGreaterThanOrEqual(35)
  })

  it('lets checkpoints without changes wait for changes to ride with, and writes them at close', async () => {
    const { q, written } = queue()
    q.mark({ key: 'k', value: '1' })
    q.mark({ key: 'k', value: '2' })
    await q.idle()
    expect(written).toEqual([])
    q.put(item('a'))
    await q.idle()
    expect(written.map((w) => [w.items.length, w.marks])).toEqual([[1, [{ key: 'k', value: '2' }]]])
    q.mark({ key: 'k', value: '3' })
    await q.close()
    expect(written.at(-1)?.marks).toEqual([{ key: 'k', value: '3' }])
  })

  it('makes batches smaller after slow transactions, and larger again after quick ones', async () => {
    let slow = true
    // A transaction slower than the target (foreign keys scanning a table, a loaded machine).
    const { q, sizes } = sizing(400, 60, () => (slow ? 150 : 0))
    for (let i = 0; i < 200; i++) q.put(item(`s${i}`))
    await q.idle()
    // A cold start takes 64; a transaction 2.5 times over the target scales the next down as much (or more, if slower).
    expect(sizes[0]).toBe(64)
    expect(sizes[1]).toBeLessThanOrEqual(25)
    expect(q.batchCap).toBe(16)
    slow = false
    sizes.length = 0
    for (let i = 0; i < 8000; i++) q.put(item(`q${i}`))
    await q.idle()
    // Quick transactions: the slow ones are remembered for a while, then batches grow back, at most doubling, up to batchSize.
    expect(sizes.slice(0, 3)).toEqual([16, 16, 16])
    for (let i = 1; i < sizes.length - 1; i++) expect(sizes[i]!).toBeLessThanOrEqual(2 * sizes[i - 1]!)
    expect(Math.max(...sizes)).toBe(400)
  })

  it('keeps batches at batchSize when the adaptation is off', async () => {
    const { q, sizes } = sizing(100, 0, () => 20)
    for (let i = 0; i < 300; i++) q.put(item(`k${i}`))
    await q.idle()
    expect(sizes).toEqual([100, 100, 100])
  })

  it('keeps checkpoints while held, and writes them released only with the changes queued until then', async () => {
    const { q, written } = queue()
    q.put(item('a'))
    q.mark({ key: 'k', value: '1' })
    q.holdMarks(true)
    await q.idle()
    // The change is written; its checkpoint is not.
    expect(written.map((w) => [w.items.map((i) => i.id).join(''), w.marks.length])).toEqual([['a', 0]])
    q.mark({ key: 'k', value: '2' })
    q.put(item('b'))
    await q.idle()
    expect(written.flatMap((w) => w.marks)).toEqual([])
    // What was read again comes while held; once released, the checkpoint goes with it, not before.
    q.put(item('c'))
    q.holdMarks(false)
    await q.close()
    const last = written.at(-1)!
    expect(last.items.map((i) => i.id)).toContain('c')
    expect(last.marks).toEqual([{ key: 'k', value: '2' }])
    expect(written.flatMap((w) => w.marks)).toHaveLength(1)
  })

  it('sizes batches by how long the writer held the lock, not by how long it waited for it', async () => {
    // The app held the write lock: the batch waited 150 ms, then held it for 1 ms.
    const { q, sizes } = sizing(400, 60, () => 150, 1)
    for (let i = 0; i < 600; i++) q.put(item(`w${i}`))
    await q.idle()
    expect(sizes.slice(0, 4)).toEqual([64, 128, 256, 152])
  })
})
