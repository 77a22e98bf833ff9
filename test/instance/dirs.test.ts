import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { openMesh } from '../../src/engine/open-mesh.js'
import { cleanupMeshDirs, listMeshDirs } from '../../src/instance/dirs.js'
import { diagnose } from '../../src/instance/doctor.js'
import { openMeshInstance } from '../../src/instance/instance.js'
import { DirectoryLock } from '../../src/instance/lock.js'
import { type Child, HOLDER, removeTempRoots, spawnFixture, tempRoot } from './helpers.js'

const children: Child[] = []
afterEach(async () => {
  for (const c of children.splice(0)) await c.kill()
  removeTempRoots()
})

async function meshDir(root: string, name: string, ageHours: number): Promise<string> {
  const dir = join(root, name)
  const mesh = await openMesh({ dir })
  await mesh.upsert('items', [{ _id: name }])
  await mesh.close()
  const when = new Date(Date.now() - ageHours * 3600_000)
  for (const f of readdirSync(dir)) utimesSync(join(dir, f), when, when)
  return dir
}

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8' })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

describe('listing and cleaning up mesh directories', () => {
  it('removes old unlocked directories and keeps locked, current and recent ones; a dry run removes nothing', async () => {
    const root = tempRoot()
    const old1 = await meshDir(root, 'pos_old1', 48)
    const old2 = await meshDir(root, 'pos_old2', 30)
    const recent = await meshDir(root, 'pos_recent', 1)
    const lockedOld = await meshDir(root, 'pos_locked', 72)
    const current = await meshDir(root, 'pos_current', 100)
    mkdirSync(join(root, 'not-a-mesh'))
    writeFileSync(join(root, 'not-a-mesh', 'data.txt'), 'keep me')
    const holder = spawnFixture(HOLDER, [lockedOld, '0'])
    children.push(holder)
    await holder.waitFor((l) => 'ready' in l)
    // Touch the locked one back to old age after the holder wrote to it.
    const when = new Date(Date.now() - 72 * 3600_000)
    for (const f of readdirSync(lockedOld)) utimesSync(join(lockedOld, f), when, when)

    const list = listMeshDirs(root)
    expect(list.map((d) => d.name)).toEqual(['pos_current', 'pos_locked', 'pos_old1', 'pos_old2', 'pos_recent'])
    expect(list.find((d) => d.name === 'pos_locked')).toMatchObject({ lock: 'held', owner: { alive: true } })

    const dry = cleanupMeshDirs(root, { dryRun: true, keep: [current] })
    expect(dry.removed.map((d) => d.dir).sort()).toEqual([old1, old2].sort())
    expect(existsSync(old1) && existsSync(old2)).toBe(true)

    const done = cleanupMeshDirs(root, { keep: [current] })
    expect(done.removed.map((d) => d.dir).sort()).toEqual([old1, old2].sort())
    expect(done.freedBytes).toBeGreaterThan(0)
    expect(existsSync(old1) || existsSync(old2)).toBe(false)
    for (const kept of [recent, lockedOld, current, join(root, 'not-a-mesh')]) expect(existsSync(kept)).toBe(true)
    expect(done.kept.find((k) => k.dir === lockedOld)?.reason).toMatch(/in use/)
  })

  it('never removes a directory this process holds', async () => {
    const root = tempRoot()
    const dir = await meshDir(root, 'pos_mine', 48)
    const inst = await openMeshInstance({ dir, healthIntervalMs: 0 })
    const when = new Date(Date.now() - 48 * 3600_000)
    for (const f of readdirSync(dir)) utimesSync(join(dir, f), when, when)
    const report = cleanupMeshDirs(root, { olderThanMs: 3600_000 })
    expect(report.removed).toEqual([])
    expect(report.kept[0]?.reason).toMatch(/held-by-this-process/)
    await inst.close()
  })

  it('rejects a missing root and a file as root, deleting nothing', () => {
    const root = tempRoot()
    writeFileSync(join(root, 'file'), 'x')
    expect(() => listMeshDirs(join(root, 'missing'))).toThrow(expect.objectContaining({ code: 'DIRECTORY_UNUSABLE' }))
    expect(() => cleanupMeshDirs(join(root, 'file'))).toThrow(expect.objectContaining({ code: 'DIRECTORY_UNUSABLE' }))
    expect(existsSync(join(root, 'file'))).toBe(true)
  })

  // Root bypasses file permissions, so an unreadable directory cannot be made when tests run as root.
  it.skipIf(process.getuid?.() === 0)('reports a directory without permission (skipped as root)', async () => {
    const root = tempRoot()
    const locked = join(root, 'noaccess')
    mkdirSync(locked, { mode: 0o000 })
    await expect(openMeshInstance({ dir: join(locked, 'x') })).rejects.toMatchObject({ code: 'DIRECTORY_UNUSABLE' })
    expect(() => listMeshDirs(locked)).toThrow()
  })
})

describe('doctor', () => {
  it('explains a held, a crashed-holder and a foreign directory', async () => {
    const root = tempRoot()
    const dir = await meshDir(root, 'pos', 0)
    const holder = spawnFixture(HOLDER, [dir, '0'])
    children.push(holder)
    const { ready: pid } = await holder.waitFor((l) => 'ready' in l)
    const held = diagnose(dir)
    expect(held).toMatchObject({ isMesh: true, ok: false, storeVersion: '1' })
    expect(held.findings[0]).toContain(`process ${pid}`)

    await holder.kill('SIGKILL')
    const after = diagnose(dir)
    expect(after.ok).toBe(true)
    expect(after.findings.join(' ')).toMatch(/ended without closing/)

    expect(diagnose(join(root, 'nope'))).toMatchObject({ exists: false, ok: false })
    mkdirSync(join(root, 'plain'))
    expect(diagnose(join(root, 'plain'))).toMatchObject({ exists: true, isMesh: false, ok: false })
  })
})

describe('heartbeat locks', () => {
  it('are exclusive, and taken over once the holder is gone', () => {
    const root = tempRoot()
    const a = DirectoryLock.tryAcquire(root, { mode: 'heartbeat', heartbeatMs: 50 })
    expect(a?.mode).toBe('heartbeat')
    expect(DirectoryLock.tryAcquire(root, { mode: 'heartbeat' })).toBeUndefined()
    expect(a?.verify()).toBe(true)
    a?.release()
    const b = DirectoryLock.tryAcquire(root, { mode: 'heartbeat', staleMs: 1 })
    expect(b).toBeDefined()
    b?.release()
  })

  it('break a stale lock left by a dead holder', () => {
    const root = tempRoot()
    writeFileSync(join(root, 'meshmirror.heartbeat'), '999999\n')
    writeFileSync(
      join(root, 'meshmirror.owner.json'),
      JSON.stringify({ pid: 999999, hostname: 'elsewhere', command: 'x', acquiredAt: 'then' }),
    )
    const old = new Date(Date.now() - 60_000)
    utimesSync(join(root, 'meshmirror.heartbeat'), old, old)
    const lock = DirectoryLock.tryAcquire(root, { mode: 'heartbeat', staleMs: 10_000 })
    expect(lock).toBeDefined()
    lock?.release()
  })
})

describe('dirs and doctor commands', () => {
  it('list, size, cleanup and doctor, as text and JSON', async () => {
    const root = tempRoot()
    const old = await meshDir(root, 'pos_old', 48)
    await meshDir(root, 'pos_new', 0)
    const list = cli('dirs', 'list', '--root', root, '--json')
    expect(list.code).toBe(0)
    expect(JSON.parse(list.stdout).dirs.map((d: { name: string }) => d.name)).toEqual(['pos_new', 'pos_old'])
    expect(cli('dirs', 'list', '--root', root).stdout).toContain('pos_old')
    const size = JSON.parse(cli('dirs', 'size', '--root', root, '--json').stdout)
    expect(size.directories).toBe(2)
    expect(size.totalBytes).toBeGreaterThan(0)
    const dry = cli('dirs', 'cleanup', '--root', root, '--older-than', '24h', '--dry-run')
    expect(dry.stdout).toContain(`would remove ${old}`)
    expect(existsSync(old)).toBe(true)
    const real = JSON.parse(cli('dirs', 'cleanup', '--root', root, '--older-than', '24h', '--json').stdout)
    expect(real.removed.map((d: { dir: string }) => d.dir)).toEqual([old])
    expect(existsSync(old)).toBe(false)
    const bad = cli('dirs', 'cleanup', '--root', root, '--older-than', 'soon')
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain('INVALID_OPTIONS')
    const doctor = cli('doctor', '--dir', join(root, 'pos_new'))
    expect(doctor.code).toBe(0)
    expect(doctor.stdout).toContain('Free')
    const missing = cli('doctor', '--dir', join(root, 'missing'), '--json')
    expect(missing.code).toBe(1)
    expect(JSON.parse(missing.stdout).exists).toBe(false)
    expect(cli('dirs', 'list', '--root', join(root, 'missing')).stderr).toMatch(/DIRECTORY_UNUSABLE/)
  })
})
