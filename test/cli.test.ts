import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { openBuiltinStore } from '../src/engine/open-builtin-store.js'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8' })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

describe('meshmirror CLI', () => {
  it('prints its version and help', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }
    expect(cli('--version')).toMatchObject({ code: 0, stdout: `${pkg.version}\n` })
    const help = cli('--help')
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('Usage: meshmirror')
    expect(help.stdout).toContain('inspect')
  })

  it('inspects a store, for people and as JSON', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mm-cli-'))
    dirs.push(dir)
    const mesh = await openBuiltinStore({ dir })
    await mesh.upsert('items', [{ _id: 'a' }, { _id: 'b' }])
    await mesh.upsert('orders', [{ _id: 'o' }])
    await mesh.remove('items', ['b'])
    const siteId = mesh.siteId
    await mesh.close()

    const text = cli('inspect', '--dir', dir)
    expect(text.code).toBe(0)
    expect(text.stdout).toContain(siteId)
    expect(text.stdout).toMatch(/documents\s+2 \(\+ 1 tombstones\)/)

    const json = cli('inspect', '--dir', dir, '--json')
    expect(json.code).toBe(0)
    expect(JSON.parse(json.stdout)).toMatchObject({
      siteId,
      sequence: 4,
      documents: 2,
      tombstones: 1,
      collections: { items: 1, orders: 1 },
      versionVector: { [siteId]: 4 },
    })
  })

  it('reports a missing directory with a code and creates nothing', () => {
    const missing = join(tmpdir(), `mm-missing-${process.pid}`)
    const r = cli('inspect', '--dir', missing)
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/^error \[DIRECTORY_UNUSABLE\]/)
    const j = cli('inspect', '--dir', missing, '--json')
    expect(j.code).toBe(1)
    expect(JSON.parse(j.stdout).error.code).toBe('DIRECTORY_UNUSABLE')
    const empty = mkdtempSync(join(tmpdir(), 'mm-cli-empty-'))
    dirs.push(empty)
    expect(cli('inspect', '--dir', empty).stderr).toMatch(/STORE_INCOMPATIBLE/)
  })

  it('rejects unknown commands', () => {
    const r = cli('frobnicate')
    expect(r.code).not.toBe(0)
    expect(r.stderr).toContain('unknown command')
  })
})
