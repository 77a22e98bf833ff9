import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { NO_KEY_REASON } from '../../src/config/table-adapter.js'
import { tempDirs } from '../bridge/helpers/wait.js'
import { runCli, startCli } from './helpers.js'

const dirs = tempDirs()
afterEach(() => dirs.cleanup())

function makeDb(dir: string): string {
  const file = join(dir, 'shop.db')
  const db = new Database(file)
  db.exec(`
    CREATE TABLE products (sku TEXT PRIMARY KEY, name TEXT, stock INTEGER);
    CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL);
    CREATE TABLE log (at TEXT, line TEXT);
    CREATE TABLE pairs (a TEXT, b TEXT, PRIMARY KEY (a, b));
    INSERT INTO products VALUES ('tea', 'Tea', 10);
  `)
  db.close()
  return file
}

describe('meshmirror init', () => {
  it('writes a starter config listing the tables, refuses to overwrite it, and peer runs with it', async () => {
    const dir = dirs.make('init')
    const db = makeDb(dir)
    const out = join(dir, 'meshmirror.config.json')
    const r = await runCli(['init', '--database', db, '--out', out, '--port', '0'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain('3 tables (orders, pairs, products)')
    expect(r.stdout).toContain('left out log: has no declared primary key')
    expect(r.stdout).toMatch(/orders: keys "local": SQLite allocates these integer keys on each device/)
    const config = JSON.parse(readFileSync(out, 'utf8'))
    expect(config).toMatchObject({
      database: './shop.db',
      mesh: { dir: './shop-mesh', strategy: 'shared' },
      listen: { host: '0.0.0.0', port: 0 },
      peers: [],
      tables: [
        { table: 'orders', id: 'id', keys: 'local' },
        { table: 'pairs', id: ['a', 'b'] },
        { table: 'products', id: 'sku' },
      ],
    })
    expect(config.secret.length).toBeGreaterThanOrEqual(16)

    writeFileSync(out, '{"edited": true}')
    const again = await runCli(['init', '--database', db, '--out', out])
    expect(again.code).toBe(1)
    expect(again.stderr).toMatch(/^error \[INVALID_CONFIG\]: .*meshmirror\.config\.json: already exists; pass --force/)
    expect(readFileSync(out, 'utf8')).toBe('{"edited": true}')
    const forced = await runCli(['init', '--database', db, '--out', out, '--force', '--port', '0', '--json'])
    expect(forced.code).toBe(0)
    expect(JSON.parse(forced.stdout).skipped).toEqual([{ table: 'log', reason: NO_KEY_REASON }])

    const peer = startCli(['peer', '--json', '--config', out])
    const live = await peer.event('live')
    expect(live.meshDir).toBe(join(dir, 'shop-mesh'))
    await peer.event('status', (e) => (e.collections as Record<string, number>).products === 1)
    // Killed, not stopped: status tells a crash from a clean stop.
    peer.child.kill('SIGKILL')
    await peer.exited
    const status = await runCli(['status', '--dir', join(dir, 'shop-mesh'), '--json'])
    expect(status.code).toBe(3)
    expect(JSON.parse(status.stdout)).toMatchObject({ running: false, state: 'crashed', lock: 'free' })
    const text = await runCli(['status', '--dir', join(dir, 'shop-mesh')])
    expect(text.stdout).toMatch(/ended without closing/)
  }, 30_000)

  it('names a database that does not exist and writes no config', async () => {
    const dir = dirs.make('init-missing')
    const r = await runCli(['init', '--database', join(dir, 'nope.db'), '--out', join(dir, 'c.json')])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/^error \[INVALID_CONFIG\]: init: --database: no database at .*nope\.db/)
    expect(() => readFileSync(join(dir, 'c.json'))).toThrow()
  })
})

describe('meshmirror status', () => {
  it('refuses a directory that is not a mesh directory', async () => {
    const r = await runCli(['status', '--dir', join(dirs.make('status'), 'nowhere'), '--json'])
    expect(r.code).toBe(1)
    expect(JSON.parse(r.stdout).error.code).toBe('DIRECTORY_UNUSABLE')
  })
})

describe('--help', () => {
  it('has examples and exit codes for every new command', async () => {
    const helps = await Promise.all(['peer', 'status', 'init', 'demo'].map((c) => runCli([c, '--help'])))
    for (const h of helps) {
      expect(h.code).toBe(0)
      expect(h.stdout).toContain('Examples:')
      expect(h.stdout).toContain('Exit codes:')
    }
    const top = await runCli(['--help'])
    for (const c of ['peer', 'status', 'init', 'demo']) expect(top.stdout).toContain(c)
  })
})
