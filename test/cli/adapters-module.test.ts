import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { syncModels } from '../../examples/pos/sync-adapters.g.js'
import { openSqliteRepository } from '../../src/repository/sqlite-repository.js'
import { tempDirs } from '../bridge/helpers/wait.js'
import { ROOT, startCli } from './helpers.js'

const dirs = tempDirs()
afterEach(() => dirs.cleanup())

describe('meshmirror peer with generated adapters', () => {
  it('loads a .mjs config naming the generated adapter module, and mirrors the tables of its models', async () => {
    const dir = dirs.make('module')
    const file = join(dir, 'pos.db')
    // The app's schema, as the generated models declare it.
    const repo = await openSqliteRepository({ file, models: syncModels })
    await repo.close()
    const db = new Database(file)
    db.exec(`INSERT INTO products (id, branch_id, name, price, tags, stock) VALUES
      ('p1', 1, 'Tea', 250, '["hot"]', 10), ('p2', 2, 'Milk', 120, '[]', 5)`)
    db.close()
    const config = join(dir, 'meshmirror.config.mjs')
    writeFileSync(
      config,
      `export default {
        database: './pos.db',
        mesh: { dir: './pos-mesh' },
        meshId: 'module-test',
        secret: process.env.HOME ? 'a test secret' : 'another secret',
        adapters: { module: ${JSON.stringify(join(ROOT, 'examples/pos/sync-adapters.g.ts'))} },
        context: { branchId: 1 },
      }\n`,
    )
    const peer = startCli(['peer', '--json', '--config', config])
    await peer.event('live')
    const status = await peer.event('status', (e) => (e.collections as Record<string, number>).products === 2)
    expect(status.tables).toMatchObject({ products: 2 })
    peer.child.kill('SIGTERM')
    expect(await peer.exited).toBe(0)
    expect(peer.stderr()).toBe('')

    // Without --json and without a terminal: plain log lines.
    const plain = startCli(['peer', '--config', config])
    await plain.line((l) => / live · 0 peers · (\w+ \d+, )*products 2/.test(l))
    expect(plain.lines[0]).toBe(`meshmirror: ${file} ⇄ mesh ${join(dir, 'pos-mesh')} (site ${status.siteId})`)
    expect(plain.lines[1]).toMatch(/^mirroring branches, counters, orders, order_items, products; Ctrl-C stops$/)
    expect(plain.lines.join('\n')).not.toContain('\x1b[')
    plain.child.kill('SIGINT')
    expect(await plain.exited).toBe(0)
    expect(plain.stderr()).toMatch(/SIGINT: stopping \(again to force\)\nstopped\n$/)
  }, 30_000)
})
