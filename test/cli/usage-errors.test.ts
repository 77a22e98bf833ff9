import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli } from './helpers.js'

let dir: string
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mm-usage-'))
  const db = new Database(join(dir, 'app.db'))
  db.exec('CREATE TABLE customers (id TEXT PRIMARY KEY, name TEXT)')
  db.close()
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('the meshmirror process, for malformed flags', () => {
  it('exits 1 with the error under a stable code on stderr (or as JSON on stdout)', async () => {
    const cases: [string[], RegExp, 'stderr' | 'stdout'][] = [
      [['frobnicate'], /^error \[INVALID_OPTIONS\]: unknown command 'frobnicate'/, 'stderr'],
      [['doctor', '--dir', dir, '--nope'], /^error \[INVALID_OPTIONS\]: unknown option '--nope'/, 'stderr'],
      [['doctor'], /^error \[INVALID_OPTIONS\]: required option '--dir <dir>' not specified/, 'stderr'],
      [['status', '--json'], /^\{"error":\{"code":"INVALID_OPTIONS","message":"required option/, 'stdout'],
    ]
    const results = await Promise.all(cases.map(([args]) => runCli(args)))
    for (const [i, [args, re, stream]] of cases.entries()) {
      const r = results[i]!
      expect(r.code, args.join(' ')).toBe(1)
      expect(r[stream], args.join(' ')).toMatch(re)
    }
  }, 60_000)

  it('refuses a number that is not written as one, writing nothing', async () => {
    const out = join(dir, 'port.json')
    for (const port of ['', ' ', '0x50', '1e3', '80abc']) {
      const r = await runCli(['init', '--database', join(dir, 'app.db'), '--out', out, '--port', port])
      expect(r.code, port).toBe(1)
      expect(r.stderr, port).toMatch(
        /^error \[INVALID_OPTIONS\]: option '--port <n>' argument .* is invalid\. expected a whole number\./,
      )
      expect(existsSync(out), port).toBe(false)
    }
  }, 60_000)

  it('refuses an --out it cannot write to as a config error naming --out', async () => {
    const db = join(dir, 'app.db')
    const cases = [dir, join(dir, 'no-such-dir', 'c.json'), join(dir, 'x'.repeat(300))]
    const results = await Promise.all(cases.map((out) => runCli(['init', '--database', db, '--out', out, '--force'])))
    for (const [i, r] of results.entries()) {
      expect(r.code, cases[i]).toBe(1)
      expect(r.stderr, cases[i]).toMatch(
        /^error \[INVALID_CONFIG\]: init: --out: cannot write ".*" \((EISDIR|ENOENT|ENAMETOOLONG)\)/,
      )
    }
  }, 60_000)

  it('refuses an init --peer that is not a ws:// or wss:// URL, writing nothing', async () => {
    const out = join(dir, 'peer.json')
    for (const peer of ['10.0.0.12:4040', 'http://10.0.0.12:4040', 'ws://']) {
      const r = await runCli([
        'init',
        '--database',
        join(dir, 'app.db'),
        '--out',
        out,
        '--peer',
        'ws://10.0.0.1:4040',
        peer,
      ])
      expect(r.code, peer).toBe(1)
      expect(r.stderr, peer).toMatch(
        /^error \[INVALID_CONFIG\]: init: --peer: expected a ws:\/\/ or wss:\/\/ URL, got ".*"/,
      )
      expect(existsSync(out), peer).toBe(false)
    }
  }, 60_000)
})
