import { describe, expect, it } from 'vitest'
import { hasCode } from '../errors.js'
import { parseConfig } from './load-config.js'

const minimal = {
  database: './pos.db',
  mesh: { dir: './pos-mesh' },
  meshId: 'shop-42',
  secret: 'change-me-please',
  tables: [{ table: 'orders', scope: { branch_id: 1 } }],
}

function fails(input: unknown): { message: string; key: unknown } {
  try {
    parseConfig(input, 'test.json', '/base')
  } catch (error) {
    if (!hasCode(error, 'INVALID_CONFIG')) throw error
    return { message: error.message, key: error.details.key }
  }
  throw new Error('expected INVALID_CONFIG')
}

describe('config key hub', () => {
  it('takes servers, one kind of credentials, TLS files and a prefix, resolving paths', () => {
    const c = parseConfig(
      {
        ...minimal,
        hub: {
          servers: ['nats://hub-1:4222', 'tls://hub-2:4222', 'hub-3:4222'],
          credsFile: './shop-a.creds',
          tls: { caFile: './ca.pem', certFile: 'till.pem', keyFile: '/keys/till.key' },
          prefix: 'chain.shop-a',
          bucket: 'pos',
          replicas: 3,
        },
      },
      'test.json',
      '/base',
    )
    expect(c.hub).toEqual({
      servers: ['nats://hub-1:4222', 'tls://hub-2:4222', 'hub-3:4222'],
      credsFile: '/base/shop-a.creds',
      tls: { caFile: '/base/ca.pem', certFile: '/base/till.pem', keyFile: '/keys/till.key' },
      prefix: 'chain.shop-a',
      bucket: 'pos',
      replicas: 3,
    })
  })

  it('reads a password, token or nkey seed from the environment when written as $NAME', () => {
    expect(
      fails({ ...minimal, hub: { servers: 'nats://h:4222', prefix: 'p', token: '$MM_HUB_TOKEN' } }).message,
    ).toContain('hub.token: environment variable MM_HUB_TOKEN is not set')
    process.env.MM_HUB_TOKEN = 'from-env'
    try {
      const c = parseConfig(
        { ...minimal, hub: { servers: 'nats://h:4222', prefix: 'p', token: '$MM_HUB_TOKEN' } },
        't',
        '/',
      )
      expect(c.hub?.token).toBe('from-env')
    } finally {
      delete process.env.MM_HUB_TOKEN
    }
  })

  it('refuses a bad hub with INVALID_CONFIG naming the key', () => {
    const hub = { servers: 'nats://h:4222', prefix: 'chain.a' }
    expect(fails({ ...minimal, hub: { ...hub, servers: [] } }).key).toBe('hub.servers')
    expect(fails({ ...minimal, hub: { ...hub, servers: 'http://h' } }).message).toContain('expected nats://host:port')
    expect(fails({ ...minimal, hub: { ...hub, prefix: 'chain.>' } }).message).toContain(
      'hub.prefix: expected subject tokens',
    )
    expect(fails({ ...minimal, hub: { servers: hub.servers } }).key).toBe('hub.prefix')
    const both = fails({ ...minimal, hub: { ...hub, token: 't', user: 'u', password: 'p' } })
    expect(both.key).toBe('hub.user')
    expect(both.message).toContain('give one kind of credentials, not "token" and "user"')
    expect(fails({ ...minimal, hub: { ...hub, password: 'p' } }).message).toContain('hub.password: needs "user"')
    expect(fails({ ...minimal, hub: { ...hub, nkeySeed: 'not-a-seed' } }).key).toBe('hub.nkeySeed')
    expect(fails({ ...minimal, hub: { ...hub, tls: { certFile: 'c.pem' } } }).message).toContain(
      'certFile and keyFile go together',
    )
    expect(fails({ ...minimal, hub: { ...hub, replicas: 7 } }).key).toBe('hub.replicas')
    expect(fails({ ...minimal, hub: { ...hub, subject: 'x' } }).message).toContain('unknown key "subject"')
    expect(fails({ ...minimal, mesh: { dir: 'm', backend: 'ditto' }, secret: undefined, hub }).message).toContain(
      'hub: not used with "backend": "ditto"',
    )
  })
})
