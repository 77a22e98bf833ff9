import { afterEach, describe, expect, it } from 'vitest'
import { type DittoMesh, openDittoStore } from '../../src/ditto/index.js'
import { removeTempDirs, tempDir } from './helpers.js'

const token = process.env.DITTO_LICENSE_TOKEN
const reason = 'skipped: DITTO_LICENSE_TOKEN is not set (Ditto sync needs an offline license token)'
const open: DittoMesh[] = []

afterEach(async () => {
  for (const s of open.splice(0)) await s.close()
  removeTempDirs()
})

describe('sync between two Ditto peers over TCP on 127.0.0.1', () => {
  it.skipIf(!token)(token ? 'a write on one peer reaches the other peer’s observer' : reason, async () => {
    const port = 40_000 + Math.floor(Math.random() * 20_000)
    const databaseId = '6f1c7a52-3d1e-4a55-9b7e-0c2f1e4d8a90'
    const a = await openDittoStore({
      dir: tempDir(),
      databaseId,
      transports: { lan: false, tcpListen: { interfaceIP: '127.0.0.1', port } },
    })
    open.push(a)
    const b = await openDittoStore({
      dir: tempDir(),
      databaseId,
      transports: { lan: false, tcpConnect: [`127.0.0.1:${port}`] },
    })
    open.push(b)
    expect(a.presence().syncActive && b.presence().syncActive).toBe(true)
    const got = new Promise<unknown>((resolve) => {
      b.observe({ collection: 'orders' }, (c) => {
        if (c.inserted.length > 0) resolve(c.inserted[0])
      })
    })
    await a.upsert('orders', [{ _id: 'o1', total: 5 }])
    expect(await got).toEqual({ _id: 'o1', total: 5 })
  })
})
