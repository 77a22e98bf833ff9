import { Kvm } from '@nats-io/kv'
import { connect } from '@nats-io/transport-node'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ErrorCode } from '../../src/errors.js'
import type { HubOptions } from '../../src/hub/hub-options.js'
import { caughtUp, closeOpened, eventually, openTill } from './helpers.js'
import { type NatsServer, natsMissing, startNatsServer } from './nats-server.js'

const missing = natsMissing()
let hub: NatsServer

/**
 * The permissions a shop's tills need on the hub, confined to the shop's
 * prefix: its keys, direct reads of them, watches filtered on them, and the
 * few JetStream calls a watch makes. The same text is in docs/hub.md.
 */
function shopUser(user: string, password: string, prefix: string): string {
  const keys = `$KV.meshmirror.${prefix}`
  return `{
      user: "${user}", password: "${password}"
      permissions: {
        publish: { allow: [
          "${keys}.>",
          "$JS.API.DIRECT.GET.KV_meshmirror.${keys}.>",
          "$JS.API.CONSUMER.CREATE.KV_meshmirror.*.${keys}.>",
          "$JS.API.CONSUMER.INFO.KV_meshmirror.*",
          "$JS.API.CONSUMER.DELETE.KV_meshmirror.*",
          "$JS.API.STREAM.INFO.KV_meshmirror",
          "$JS.API.INFO",
          "$JS.FC.KV_meshmirror.>"
        ] }
        subscribe: { allow: ["_INBOX.>"] }
      }
    }`
}

function till(site: string, options: Partial<HubOptions>) {
  return openTill(site, { servers: hub.url, prefix: 'x', ...options })
}

describe.skipIf(missing)('hub permissions (nats-server with a user per shop)', () => {
  beforeAll(async () => {
    hub = await startNatsServer({
      extra: `authorization {
  users: [
    { user: "admin", password: "admin-pw" }
    ${shopUser('shop-a', 'a-pw', 'chain.a')}
    ${shopUser('shop-b', 'b-pw', 'chain.b')}
  ]
}`,
    })
    // The operator creates the bucket: the shops' credentials may not.
    const nc = await connect({ servers: hub.url, user: 'admin', pass: 'admin-pw' })
    await new Kvm(nc).create('meshmirror', { history: 1 })
    await nc.close()
  })
  afterAll(async () => {
    await hub?.stop()
    hub?.remove()
  })
  afterEach(closeOpened)

  it("a till with shop A's credentials syncs shop A and can neither read nor write shop B", async () => {
    const a1 = await till('a1', { user: 'shop-a', password: 'a-pw', prefix: 'chain.a' })
    const a2 = await till('a2', { user: 'shop-a', password: 'a-pw', prefix: 'chain.a' })
    const b1 = await till('b1', { user: 'shop-b', password: 'b-pw', prefix: 'chain.b' })
    for (const t of [a1, a2, b1]) await caughtUp(t.link)
    await a1.mesh.upsert('orders', [{ _id: 'a-order', total: 1 }])
    await b1.mesh.upsert('orders', [{ _id: 'b-order', total: 2 }])
    await eventually(async () => expect(await a2.mesh.get('orders', 'a-order')).toBeDefined())
    expect(a1.errors).toEqual([])

    // Shop A's credentials pointed at shop B's subjects: refused, with a stable code, and nothing of B arrives.
    const spy = await till('spy', { user: 'shop-a', password: 'a-pw', prefix: 'chain.b' })
    await eventually(() => expect(spy.errors.length).toBeGreaterThan(0))
    expect(spy.errors[0]!.code).toBe(ErrorCode.HUB_PERMISSION_DENIED)
    expect(spy.errors[0]!.message).toMatch(/refused .* to these credentials/)
    expect(spy.link.status().lastError).toMatch(/^HUB_PERMISSION_DENIED/)
    await spy.mesh.upsert('orders', [{ _id: 'forged', total: 666 }])
    await new Promise((r) => setTimeout(r, 1000))
    expect(await spy.mesh.get('orders', 'b-order')).toBeUndefined()
    expect(await b1.mesh.get('orders', 'forged')).toBeUndefined()
    expect(await a1.mesh.get('orders', 'b-order')).toBeUndefined()

    // The same refusals, straight from NATS: no read, no write of shop B's keys with shop A's credentials.
    const nc = await connect({ servers: hub.url, user: 'shop-a', pass: 'a-pw' })
    const kv = await new Kvm(nc).open('meshmirror', { allow_direct: true })
    await expect(kv.get('chain.b.orders._.b-order')).rejects.toThrow(/permission/i)
    await expect(kv.put('chain.b.orders._.b-order', '{}')).rejects.toThrow(/permission|timeout/i)
    expect(await kv.get('chain.a.orders._.a-order')).not.toBeNull()
    await nc.close()
  }, 60_000)

  it('wrong credentials are told as HUB_UNAVAILABLE naming the refusal', async () => {
    const t = await till('wrong', { user: 'shop-a', password: 'not-it', prefix: 'chain.a' })
    await eventually(() => expect(t.errors.length).toBeGreaterThan(0))
    expect(t.errors[0]!.code).toBe(ErrorCode.HUB_UNAVAILABLE)
    expect(t.errors[0]!.message).toMatch(/refused the credentials/)
    expect(t.link.status().state).toBe('connecting')
  })
})
