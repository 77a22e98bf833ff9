import { existsSync } from 'node:fs'
import { join, relative } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { DITTO_LOCK_FILE, type DittoMesh, openDittoMesh, openDittoStore } from '../../src/ditto/index.js'
import { MeshmirrorError } from '../../src/errors.js'
import type { ObserverChange } from '../../src/mesh/mesh-store.js'
import { removeTempDirs, spawnFixture, tempDir } from './helpers.js'

const open: DittoMesh[] = []
async function store(dir = tempDir(), options: Parameters<typeof openDittoStore>[0] | object = {}): Promise<DittoMesh> {
  const s = await openDittoStore({ ...options, dir })
  open.push(s)
  return s
}

afterEach(async () => {
  for (const s of open.splice(0)) await s.close()
  removeTempDirs()
})

async function code(p: Promise<unknown>): Promise<string | undefined> {
  return p.then(
    () => undefined,
    (e: unknown) => (e instanceof MeshmirrorError ? e.code : `not a MeshmirrorError: ${String(e)}`),
  )
}

describe('Ditto counters (COUNTER type, APPLY … INCREMENT BY)', () => {
  it('increment from nothing, upsert restarts the counter, then increments add to it', async () => {
    const mesh = await store()
    expect(await mesh.increment('stock', 'sku1', 'qty', 10)).toBe(10)
    expect(await mesh.increment('stock', 'sku1', 'qty', -3)).toBe(7)
    expect(await mesh.get('stock', 'sku1')).toEqual({ _id: 'sku1', qty: 7 })
    expect(await mesh.upsert('stock', [{ _id: 'sku1', qty: 100, name: 'tea' }])).toEqual({
      changed: ['sku1'],
      unchanged: [],
    })
    expect(await mesh.increment('stock', 'sku1', 'qty', 1)).toBe(101)
    expect(await mesh.upsert('stock', [{ _id: 'sku1', qty: 101 }])).toEqual({ changed: [], unchanged: ['sku1'] })
    expect(await mesh.get('stock', 'sku1')).toEqual({ _id: 'sku1', qty: 101, name: 'tea' })
  })

  it('a number set before the field was a counter is the base of the first increment', async () => {
    const mesh = await store()
    await mesh.upsert('stock', [{ _id: 'a', qty: 40 }])
    expect(await mesh.increment('stock', 'a', 'qty', 2)).toBe(42)
    expect(await mesh.get('stock', 'a')).toEqual({ _id: 'a', qty: 42 })
  })

  it('refuses fractional increments and non-integer fields, changing nothing', async () => {
    const mesh = await store()
    await mesh.upsert('stock', [{ _id: 's', name: 'tea', price: 2.5 }])
    expect(await code(mesh.increment('stock', 's', 'qty', 0.5))).toBe('INVALID_OPTIONS')
    expect(await code(mesh.increment('stock', 's', 'price', 1))).toBe('TYPE_MISMATCH')
    expect(await code(mesh.increment('stock', 's', 'name', 1))).toBe('TYPE_MISMATCH')
    expect(await mesh.get('stock', 's')).toEqual({ _id: 's', name: 'tea', price: 2.5 })
  })

  it('counter fields are remembered across reopen, and can be declared up front', async () => {
    const dir = tempDir()
    let mesh = await store(dir)
    await mesh.increment('stock', 'x', 'qty', 5)
    await mesh.close()
    mesh = await store(dir)
    await mesh.upsert('stock', [{ _id: 'x', qty: 1 }])
    expect(await mesh.increment('stock', 'x', 'qty', 1)).toBe(2)

    const declared = await store(tempDir(), { counterFields: { stock: ['qty'] } })
    await declared.upsert('stock', [{ _id: 'y', qty: 9 }])
    expect(await declared.increment('stock', 'y', 'qty', 1)).toBe(10)
  })

  it('replace mode removes a counter field entirely', async () => {
    const mesh = await store()
    await mesh.upsert('stock', [{ _id: 'a', qty: 3, name: 'tea' }])
    await mesh.increment('stock', 'a', 'qty', 1)
    await mesh.upsert('stock', [{ _id: 'a', name: 'tea' }], { mode: 'replace' })
    expect(await mesh.get('stock', 'a')).toEqual({ _id: 'a', name: 'tea' })
    expect(await mesh.increment('stock', 'a', 'qty', 1)).toBe(1)
  })
})

describe('Ditto documents', () => {
  it('a nested object is replaced as a whole (declared REGISTER, not merged as a MAP)', async () => {
    const mesh = await store()
    await mesh.upsert('c', [{ _id: 'a', o: { x: 1, y: 2 } }])
    expect(await mesh.upsert('c', [{ _id: 'a', o: { x: 1 } }])).toEqual({ changed: ['a'], unchanged: [] })
    expect(await mesh.get('c', 'a')).toEqual({ _id: 'a', o: { x: 1 } })
  })

  it('evict removes locally without reporting a tombstone', async () => {
    const mesh = await store()
    await mesh.upsert('c', [{ _id: 'a' }, { _id: 'b' }])
    expect(await mesh.evict('c', ['a', 'zz'])).toEqual({ changed: ['a'], unchanged: ['zz'] })
    expect((await mesh.find({ collection: 'c' })).map((d) => d._id)).toEqual(['b'])
  })

  it('a user value "commit" or "rollback" from a transaction is returned, not obeyed', async () => {
    const mesh = await store()
    const r = await mesh.transaction(async (tx) => {
      await tx.upsert('c', [{ _id: 'a' }])
      return 'rollback'
    })
    expect(r).toBe('rollback')
    expect(await mesh.get('c', 'a')).toEqual({ _id: 'a' })
  })

  it('sorting and comparisons follow the port where DQL differs (missing first, $ne keeps missing)', async () => {
    const mesh = await store()
    await mesh.upsert('q', [{ _id: 'a', s: 'b' }, { _id: 'b' }, { _id: 'c', s: 'a' }, { _id: 'd', s: null }])
    expect((await mesh.find({ collection: 'q', orderBy: 's' })).map((d) => d._id)).toEqual(['b', 'd', 'c', 'a'])
    expect((await mesh.find({ collection: 'q', filter: { s: { $ne: 'a' } } })).map((d) => d._id)).toEqual([
      'a',
      'b',
      'd',
    ])
    expect((await mesh.find({ collection: 'q', filter: { s: null } })).map((d) => d._id)).toEqual(['d'])
  })
})

describe('writes outside this store (as sync delivers them)', () => {
  it('fire observers as diffs and are found by changesSince', async () => {
    const mesh = await store()
    await mesh.upsert('o', [{ _id: 'a', v: 1 }])
    const first = await mesh.changesSince(null, { collection: 'o' })
    const seen: ObserverChange[] = []
    const obs = mesh.observe({ collection: 'o' }, (c) => {
      seen.push(c)
    })
    await obs.ready
    const ditto = mesh.ditto
    await ditto.store.execute('INSERT INTO o DOCUMENTS (:d) ON ID CONFLICT DO UPDATE', { d: { _id: 'r', v: 9 } })
    await ditto.store.execute('DELETE FROM o WHERE _id = :id', { id: 'a' })
    await waitFor(() => seen.flatMap((c) => [...c.inserted, ...c.removed]).length === 2)
    expect(seen.flatMap((c) => c.inserted)).toEqual([{ _id: 'r', v: 9 }])
    expect(seen.flatMap((c) => c.removed.map((r) => r._id))).toEqual(['a'])
    const later = await mesh.changesSince(first.cursor, { collection: 'o' })
    expect(later.changed).toEqual([{ _id: 'r', v: 9 }])
    expect(later.removed).toEqual(['a'])
    expect((await mesh.changesSince(later.cursor, { collection: 'o' })).changed).toEqual([])
    obs.cancel()
  })

  it('changes made while the store was closed are found after reopening', async () => {
    const dir = tempDir()
    let mesh = await store(dir)
    await mesh.upsert('o', [{ _id: 'a', v: 1 }])
    const { cursor } = await mesh.changesSince(null, { collection: 'o' })
    // A change whose note was lost (as after a crash between commit and note).
    await mesh.ditto.store.execute('UPDATE o SET v = 2 WHERE _id = :id', { id: 'a' })
    await mesh.close()
    mesh = await store(dir)
    expect((await mesh.changesSince(cursor, { collection: 'o' })).changed).toEqual([{ _id: 'a', v: 2 }])
  })
})

describe('sync settings', () => {
  it('sync does not start without a license token, and startSync says why', async () => {
    const saved = process.env.DITTO_LICENSE_TOKEN
    delete process.env.DITTO_LICENSE_TOKEN
    try {
      const mesh = await store()
      expect(mesh.presence()).toMatchObject({ syncActive: false, licensed: false })
      expect(() => mesh.startSync()).toThrow(expect.objectContaining({ code: 'LICENSE_REQUIRED' }))
      expect(await mesh.stats()).toMatchObject({ syncActive: 0, peers: 0 })
    } finally {
      if (saved !== undefined) process.env.DITTO_LICENSE_TOKEN = saved
    }
  })

  it('a license token is taken from the option, else from DITTO_LICENSE_TOKEN, and a bad one is refused', async () => {
    const saved = process.env.DITTO_LICENSE_TOKEN
    const dir = tempDir()
    try {
      delete process.env.DITTO_LICENSE_TOKEN
      const fromOption = await openDittoStore({ dir, licenseToken: 'not-a-license' }).catch((e: unknown) => e)
      expect(fromOption).toMatchObject({ code: 'LICENSE_REQUIRED', message: expect.stringMatching(/refused/) })
      process.env.DITTO_LICENSE_TOKEN = 'not-a-license-either'
      expect(await code(openDittoStore({ dir }))).toBe('LICENSE_REQUIRED')
      // The directory was released each time: a store without a token opens.
      delete process.env.DITTO_LICENSE_TOKEN
      const mesh = await store(dir)
      expect(mesh.presence().licensed).toBe(false)
    } finally {
      if (saved === undefined) delete process.env.DITTO_LICENSE_TOKEN
      else process.env.DITTO_LICENSE_TOKEN = saved
    }
  })

  it('transports are passed to Ditto', async () => {
    const mesh = await store(tempDir(), {
      transports: {
        lan: false,
        tcpListen: { interfaceIP: '127.0.0.1', port: 47_123 },
        tcpConnect: ['127.0.0.1:47124'],
        websocketConnect: ['wss://relay.example.invalid'],
      },
    })
    const t = mesh.ditto.transportConfig
    expect(t.peerToPeer.lan).toMatchObject({ isEnabled: false, isMdnsEnabled: false, isMulticastEnabled: false })
    expect(t.peerToPeer.bluetoothLE.isEnabled).toBe(false)
    expect(t.listen.tcp).toMatchObject({ isEnabled: true, interfaceIP: '127.0.0.1', port: 47_123 })
    expect(t.connect.tcpServers).toEqual(['127.0.0.1:47124'])
    expect(t.connect.websocketURLs).toEqual(['wss://relay.example.invalid'])
    const lan = await store(tempDir())
    expect(lan.ditto.transportConfig.peerToPeer.lan.isEnabled).toBe(true)
  })

  it('presence is part of the instance health', async () => {
    const saved = process.env.DITTO_LICENSE_TOKEN
    delete process.env.DITTO_LICENSE_TOKEN
    try {
      const inst = await openDittoMesh({ dir: tempDir(), healthIntervalMs: 0 })
      const health = await inst.health()
      expect(health).toMatchObject({ engine: 'ditto', storeOpen: true, lock: { held: true } })
      expect(health.presence).toEqual({ syncActive: false, licensed: false, peers: [] })
      await inst.close()
      expect((await inst.health()).presence).toBeUndefined()
    } finally {
      if (saved !== undefined) process.env.DITTO_LICENSE_TOKEN = saved
    }
  })

  it('a relative directory is made absolute against the working directory (Ditto would use ~/.local/share/ditto)', async () => {
    const abs = tempDir()
    const mesh = await store(relative(process.cwd(), abs))
    expect(mesh.dir).toBe(abs)
    await mesh.upsert('c', [{ _id: 'here' }])
    expect(existsSync(join(abs, '__ditto_version.txt'))).toBe(true)
    expect(existsSync(join(abs, DITTO_LOCK_FILE))).toBe(true)
  })

  it('quiet by default; logLevel turns Ditto logging on, diskLogs: false keeps its debug files empty', async () => {
    const run = async (args: string[]) => {
      const child = spawnFixture('logging.ts', [tempDir(), ...args])
      const report = await child.waitFor((l) => typeof l.diskLogBytes === 'number')
      expect(await child.exited).toEqual({ code: 0, signal: null })
      // Ditto's log lines: a timestamp, then the level.
      const logLines = `${child.stdout()}${child.stderr()}`
        .split('\n')
        .filter((l) => /^\d{4}-\d\d-\d\dT\S+Z\s+(ERROR|WARN|INFO|DEBUG)\b/.test(l))
      return { diskLogBytes: report.diskLogBytes as number, logLines }
    }
    const quiet = await run(['false'])
    expect(quiet).toEqual({ diskLogBytes: 0, logLines: [] })
    const withFiles = await run(['true'])
    expect(withFiles.logLines).toEqual([])
    expect(withFiles.diskLogBytes).toBeGreaterThan(0)
    const loud = await run(['false', 'Info'])
    expect(loud.logLines.length).toBeGreaterThan(0)
  })

  it('options are checked before anything is opened', async () => {
    const dir = tempDir()
    expect(await code(openDittoStore({ dir, databaseId: 'not-a-uuid' }))).toBe('INVALID_OPTIONS')
    expect(await code(openDittoStore({ dir, logLevel: 'loud' as never }))).toBe('INVALID_OPTIONS')
  })
})

async function waitFor(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 10))
  }
}
