import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { tempDirs } from '../bridge/helpers/wait.js'
import { type CliProcess, runCli, startCli } from './helpers.js'

const dirs = tempDirs()
let dir: string
let server: Server
let busyPort: number
let holder: CliProcess

const DDL = `
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE audit_log (at TEXT, what TEXT);
INSERT INTO customers VALUES (1, 'Ann');
`

function makeDb(name: string): string {
  const file = join(dir, name)
  const db = new Database(file)
  db.exec(DDL)
  db.close()
  return file
}

const digest = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex')

function config(name: string, overrides: Record<string, unknown>, db = 'app.db'): string {
  const file = join(dir, `${name}.json`)
  writeFileSync(
    file,
    JSON.stringify({
      database: `./${db}`,
      mesh: { dir: `./${name}-mesh` },
      meshId: 'bad-config',
      secret: 'a test secret',
      tables: [{ table: 'customers', keys: 'global' }],
      ...overrides,
    }),
  )
  return file
}

beforeAll(async () => {
  dir = dirs.make('bad-config')
  makeDb('app.db')
  makeDb('held.db')
  server = createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  busyPort = (server.address() as { port: number }).port
  // A peer holding a mesh directory that another config names.
  holder = startCli(['peer', '--json', '--config', config('holder', {}, 'held.db')])
  await holder.event('live')
}, 30_000)

afterAll(async () => {
  holder.child.kill('SIGTERM')
  await holder.exited
  await new Promise((r) => server.close(r))
  dirs.cleanup()
})

interface Case {
  name: string
  args: () => string[]
  code: string
  says: RegExp[]
}

const cases: Case[] = [
  {
    name: 'a missing config file',
    args: () => ['--config', join(dir, 'nowhere.json')],
    code: 'INVALID_CONFIG',
    says: [/nowhere\.json: no such file/, /meshmirror init/],
  },
  {
    name: 'a file that is not JSON',
    args: () => {
      writeFileSync(join(dir, 'broken.json'), '{ "database": ')
      return ['--config', join(dir, 'broken.json')]
    },
    code: 'INVALID_CONFIG',
    says: [/broken\.json: not valid JSON/],
  },
  {
    name: 'wrong types and an unknown key',
    args: () => [
      '--config',
      config('types', { listen: { host: '127.0.0.1', port: '4040' }, tables: [{ table: 5 }], tabels: [] }),
    ],
    code: 'INVALID_CONFIG',
    says: [
      /listen\.port: expected number, received string/,
      /tables\[0\]\.table: expected string, received number/,
      /unknown key "tabels"/,
    ],
  },
  {
    name: 'a missing required key',
    args: () => ['--config', config('nosecret', { secret: undefined, meshId: 'x y' })],
    code: 'INVALID_CONFIG',
    says: [/secret: missing: expected string/, /meshId: expected 1-128 characters/],
  },
  {
    name: 'an unknown table',
    args: () => [
      '--config',
      config('unknown', { tables: [{ table: 'customers', keys: 'global' }, { table: 'orders' }] }),
    ],
    code: 'INVALID_CONFIG',
    says: [/tables\[1\]\.table: no table "orders" in .*app\.db; it has audit_log, customers/],
  },
  {
    name: 'an integer-keyed table mirrored both ways without keys',
    args: () => ['--config', config('nokeys', { tables: [{ table: 'customers' }] })],
    code: 'INVALID_CONFIG',
    says: [
      /tables\[0\]\.keys: table customers has an integer primary key \(id\) and is mirrored both ways: .*"local" .*"global"/,
    ],
  },
  {
    name: 'a table without a primary key',
    args: () => ['--config', config('nopk', { tables: [{ table: 'audit_log' }] })],
    code: 'INVALID_CONFIG',
    says: [/tables\[0\]\.table: table audit_log has no declared primary key/],
  },
  {
    name: 'an unknown counter column',
    args: () => [
      '--config',
      config('counter', { tables: [{ table: 'customers', keys: 'global', counters: ['stock'] }] }),
    ],
    code: 'INVALID_CONFIG',
    says: [/tables\[0\]\.counters: table customers has no column stock; its columns are id, name/],
  },
  {
    name: 'a database that does not exist',
    args: () => ['--config', config('nodb', {}, 'missing.db')],
    code: 'INVALID_CONFIG',
    says: [/database: no database at .*missing\.db/],
  },
  {
    name: 'a port in use',
    args: () => ['--config', config('port', { listen: { host: '127.0.0.1', port: busyPort } })],
    code: 'ADDRESS_IN_USE',
    says: [new RegExp(`listen: 127\\.0\\.0\\.1:${'\\d+'} is in use by another process`)],
  },
  {
    name: 'a host that is not this machine',
    args: () => ['--config', config('host', { listen: { host: '192.0.2.1', port: 0 } })],
    code: 'INVALID_CONFIG',
    says: [/listen\.host: 192\.0\.2\.1 is not an address of this machine/],
  },
  {
    name: 'a mesh directory another peer holds',
    args: () => ['--config', config('locked', { mesh: { dir: './holder-mesh' } })],
    code: 'LOCK_HELD',
    says: [/holder-mesh is in use by process \d+/, /meshmirror doctor/],
  },
]

describe('meshmirror peer with a bad config', () => {
  it('says what is wrong and where, exits non-zero, and writes nothing', async () => {
    const before = digest(join(dir, 'app.db'))
    const results = await Promise.all(cases.map((c) => runCli(['peer', ...c.args()])))
    for (const [i, c] of cases.entries()) {
      const r = results[i]!
      expect(r.code, `${c.name}: ${r.stderr} ${r.stdout}`).toBe(1)
      expect(r.stderr, c.name).toMatch(new RegExp(`^error \\[${c.code}\\]`))
      for (const re of c.says) expect(r.stderr, c.name).toMatch(re)
    }
    expect(holder.child.exitCode, 'the holder is still running').toBeNull()
    // Nothing written: the database is byte for byte as it was, no mesh directory was made.
    expect(digest(join(dir, 'app.db'))).toBe(before)
    expect(existsSync(join(dir, 'missing.db'))).toBe(false)
    const made = readdirSync(dir).filter((f) => f.endsWith('-mesh') && f !== 'holder-mesh')
    expect(made).toEqual([])
    expect(readdirSync(dir).filter((f) => f.startsWith('app.db'))).toEqual(['app.db'])
  }, 60_000)

  it('reports a bad config as one JSON document with --json', async () => {
    const r = await runCli(['peer', '--json', '--config', config('json', { tables: [{ table: 'audit_log' }] })])
    expect(r.code).toBe(1)
    const { error } = JSON.parse(r.stdout)
    expect(error).toMatchObject({ code: 'INVALID_CONFIG', details: { key: 'tables[0].table' } })
  })
})
