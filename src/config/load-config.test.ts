import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { hasCode } from '../errors.js'
import { loadConfig, parseConfig } from './load-config.js'

const minimal = {
  database: './pos.db',
  mesh: { dir: './pos-mesh' },
  meshId: 'shop-42',
  secret: 'change-me-please',
  tables: [{ table: 'counters', scope: { branch_id: 1 }, counters: ['cur_rcpt_no'] }],
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

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
  delete process.env.MM_TEST_SECRET
  delete process.env.MM_TEST_OLD_SECRET
})

describe('config', () => {
  it('keeps a postgres:// database as written, reads one from the environment, and its options only with one', () => {
    const url = 'postgres://mirror@db.example:5432/shop'
    const c = parseConfig({ ...minimal, database: url, postgres: { schema: 'shop' } }, 'test.json', '/base/dir')
    expect(c.database).toBe(url)
    expect(c.postgres).toEqual({ schema: 'shop' })
    process.env.MM_TEST_PG_URL = url
    try {
      expect(parseConfig({ ...minimal, database: '$MM_TEST_PG_URL' }, 'test.json', '/base').database).toBe(url)
    } finally {
      delete process.env.MM_TEST_PG_URL
    }
    expect(fails({ ...minimal, database: '$MM_TEST_PG_URL' }).key).toBe('database')
    expect(fails({ ...minimal, postgres: { schema: 'shop' } }).key).toBe('postgres')
  })

  it('resolves paths against the config file directory', () => {
    const c = parseConfig(minimal, 'test.json', '/base/dir')
    expect(c.database).toBe('/base/dir/pos.db')
    expect(c.mesh.dir).toBe('/base/dir/pos-mesh')
    expect(c.tables?.[0]).toEqual(minimal.tables[0])
  })

  it('names every offending key with what was expected', () => {
    const r = fails({
      ...minimal,
      listen: { host: '0.0.0.0', port: 70000 },
      peers: ['http://x'],
      settings: { batchSize: 0, skipInitialFetch: 'yes', startupDelay: 3 },
      tables: [{ table: 'counters', direction: 'both' }],
    })
    expect(r.key).toBe('listen.port')
    expect(r.message).toContain('listen.port: Too big: expected number to be <=65535')
    expect(r.message).toContain('peers[0]: expected a ws:// or wss:// URL')
    expect(r.message).toContain('settings.batchSize: Too small')
    expect(r.message).toContain('settings.skipInitialFetch: expected boolean, received string')
    expect(r.message).toContain('settings: unknown key "startupDelay"')
    expect(r.message).toContain(
      'tables[0].direction: Invalid option: expected one of "bidirectional"|"sendOnly"|"receiveOnly"',
    )
  })

  it('needs something to mirror, and a config object', () => {
    expect(fails({ ...minimal, tables: [] }).message).toContain('tables: expected "tables"')
    expect(fails(null).message).toContain('(top level)')
    expect(fails({ ...minimal, secret: 'short' }).message).toContain(
      'secret: expected a string of at least 8 characters',
    )
  })

  it('reads the limits on what a peer may make this one do', () => {
    expect(parseConfig({ ...minimal, limits: { maxCollections: 50 } }, 'test.json', '/').limits).toEqual({
      maxCollections: 50,
    })
    expect(fails({ ...minimal, limits: { maxCollections: 0 } }).key).toBe('limits.maxCollections')
    expect(fails({ ...minimal, limits: { maxColections: 5 } }).message).toContain('limits: unknown key "maxColections"')
  })

  it('lists the first 20 problems of a config with thousands, and counts them all', () => {
    const r = fails({ ...minimal, tables: Array.from({ length: 5000 }, () => ({ table: 1 })) })
    expect(r.key).toBe('tables[0].table')
    expect(r.message.split('\n')).toHaveLength(22)
    expect(r.message).toMatch(/tables\[19\]\.table: .*\n {2}… and 4980 more$/)
  })

  it('refuses a path with a NUL character, naming the key', () => {
    expect(fails({ ...minimal, mesh: { dir: 'pos\0mesh' } })).toMatchObject({
      key: 'mesh.dir',
      message: expect.stringContaining('mesh.dir: a path cannot contain a NUL character'),
    })
    expect(fails({ ...minimal, database: '\0' }).key).toBe('database')
    expect(fails({ ...minimal, adapters: { module: './a\0.js' } }).key).toBe('adapters.module')
  })

  it('refuses a path that is not valid Unicode, which the file system would write under another name', () => {
    expect(fails({ ...minimal, mesh: { dir: './pos-\ud800' } })).toMatchObject({
      key: 'mesh.dir',
      message: expect.stringContaining('mesh.dir: a path cannot contain a lone surrogate'),
    })
    expect(fails({ ...minimal, database: '\udc00.db' }).key).toBe('database')
  })

  it('reads the secret from the environment when written as $NAME', () => {
    expect(fails({ ...minimal, secret: '$MM_TEST_SECRET' }).message).toContain(
      'secret: environment variable MM_TEST_SECRET is not set',
    )
    process.env.MM_TEST_SECRET = 'from the environment'
    expect(parseConfig({ ...minimal, secret: '$MM_TEST_SECRET' }, 'test.json', '/').secret).toBe('from the environment')
  })

  it('takes previous secrets while rotating (from the environment too), and insecure only as a boolean', () => {
    process.env.MM_TEST_OLD_SECRET = 'the old secret'
    const c = parseConfig(
      { ...minimal, previousSecrets: ['$MM_TEST_OLD_SECRET', 'an older secret'], insecure: false },
      'test.json',
      '/',
    )
    expect(c.previousSecrets).toEqual(['the old secret', 'an older secret'])
    expect(fails({ ...minimal, previousSecrets: ['$MM_TEST_UNSET_SECRET'] }).message).toContain(
      'previousSecrets[0]: environment variable MM_TEST_UNSET_SECRET is not set',
    )
    const same = fails({ ...minimal, previousSecrets: [minimal.secret] })
    expect(same.key).toBe('previousSecrets')
    expect(same.message).toContain('previousSecrets: expected secrets different from "secret" and from each other')
    expect(fails({ ...minimal, previousSecrets: ['short'] }).message).toContain(
      'previousSecrets[0]: expected a string of at least 8 characters',
    )
    expect(fails({ ...minimal, previousSecrets: ['secret-1', 'secret-2', 'secret-3', 'secret-4'] }).key).toBe(
      'previousSecrets',
    )
    expect(fails({ ...minimal, insecure: 'yes' }).message).toContain('insecure: expected boolean, received string')
    // Peer URLs written before links were encrypted keep their meaning: a meshmirror link to host:port.
    expect(parseConfig({ ...minimal, peers: ['ws://10.0.0.12:4040'] }, 'test.json', '/').peers).toEqual([
      'ws://10.0.0.12:4040',
    ])
  })

  it('loads JSON and .mjs files, and names the file when it cannot', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mm-config-'))
    dirs.push(dir)
    writeFileSync(join(dir, 'a.json'), JSON.stringify(minimal))
    writeFileSync(join(dir, 'b.mjs'), `export default ${JSON.stringify({ ...minimal, meshId: 'from-mjs' })}\n`)
    writeFileSync(join(dir, 'c.mjs'), 'export const config = {}\n')
    expect((await loadConfig(join(dir, 'a.json'))).database).toBe(join(dir, 'pos.db'))
    const b = await loadConfig(join(dir, 'b.mjs'))
    expect(b).toMatchObject({ meshId: 'from-mjs', file: join(dir, 'b.mjs') })
    await expect(loadConfig(join(dir, 'c.mjs'))).rejects.toThrow(/c\.mjs: the module has no default export/)
    await expect(loadConfig(join(dir, 'none.json'))).rejects.toThrow(/none\.json: no such file/)
  })

  it('refuses a module default export that throws when read, as a config error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mm-config-'))
    dirs.push(dir)
    writeFileSync(join(dir, 'getter.mjs'), 'export default { get database() { throw new Error("boom") } }\n')
    writeFileSync(join(dir, 'proxy.mjs'), 'export default new Proxy({}, { ownKeys() { throw new Error("trap") } })\n')
    await expect(loadConfig(join(dir, 'getter.mjs'))).rejects.toMatchObject({
      code: 'INVALID_CONFIG',
      message: expect.stringMatching(/getter\.mjs: the config cannot be read \(boom\)/),
    })
    await expect(loadConfig(join(dir, 'proxy.mjs'))).rejects.toMatchObject({ code: 'INVALID_CONFIG' })
  })
})

describe('config with the Ditto backend', () => {
  const { secret: _secret, ...withoutSecret } = minimal
  const ditto = { ...withoutSecret, mesh: { dir: './pos-ditto', backend: 'ditto' } }

  it('needs no secret, and reads the licence token from the environment', () => {
    process.env.MM_TEST_SECRET = 'token-from-env'
    const c = parseConfig(
      { ...ditto, mesh: { ...ditto.mesh, ditto: { licenseToken: '$MM_TEST_SECRET', transports: { lan: true } } } },
      'test.json',
      '/base',
    )
    expect(c.mesh.ditto?.licenseToken).toBe('token-from-env')
    expect(c.secret).toBeUndefined()
  })

  it('leaves an unset licence token out (the store works locally), but refuses an unset shared key', () => {
    const c = parseConfig(
      { ...ditto, mesh: { ...ditto.mesh, ditto: { licenseToken: '$MM_TEST_SECRET' } } },
      'test.json',
      '/base',
    )
    expect(c.mesh.ditto).toEqual({})
    const f = fails({ ...ditto, mesh: { ...ditto.mesh, ditto: { sharedKey: '$MM_TEST_SECRET' } } })
    expect(f.key).toBe('mesh.ditto.sharedKey')
  })

  it('refuses the builtin replication keys, naming each', () => {
    for (const [key, value] of [
      ['secret', 'long-enough-secret'],
      ['listen', { host: '0.0.0.0', port: 4040 }],
      ['peers', ['ws://10.0.0.2:4040']],
      ['discovery', true],
    ] as const) {
      const f = fails({ ...ditto, [key]: value })
      expect(f.key).toBe(key)
      expect(f.message).toMatch(/Ditto syncs through its own transports/)
    }
  })

  it('refuses recordConflicts, a bad database id, and Ditto options without the Ditto backend', () => {
    expect(fails({ ...ditto, tables: [{ table: 't', recordConflicts: true }] }).key).toBe('tables[0].recordConflicts')
    expect(fails({ ...ditto, mesh: { ...ditto.mesh, ditto: { databaseId: 'nope' } } }).key).toBe(
      'mesh.ditto.databaseId',
    )
    expect(fails({ ...minimal, mesh: { dir: './m', ditto: {} } }).key).toBe('mesh.ditto')
    expect(fails(withoutSecret).key).toBe('secret')
  })
})
