import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { openBuiltinStore } from '../../src/engine/open-builtin-store.js'
import { cleanupMeshDirs, diagnose, listMeshDirs, openMeshInstance } from '../../src/index.js'
import { DirectoryLock } from '../../src/instance/lock.js'
import { readOwner } from '../../src/instance/owner.js'
import { type Child, HOLDER, removeTempRoots, spawnFixture, tempRoot } from './helpers.js'

const children: Child[] = []
afterEach(async () => {
  for (const c of children.splice(0)) await c.kill()
  removeTempRoots()
})

function age(dir: string, hours: number): void {
  const when = new Date(Date.now() - hours * 3600_000)
  for (const f of readdirSync(dir)) utimesSync(join(dir, f), when, when)
}

async function meshDir(root: string, name: string, ageHours: number): Promise<string> {
  const dir = join(root, name)
  const mesh = await openBuiltinStore({ dir })
  await mesh.upsert('items', [{ _id: name }])
  await mesh.close()
  age(dir, ageHours)
  return dir
}

/** Runs the dirs and doctor commands in a child process (a program with just them, as main.ts registers them). */
function cli(args: string[], as: { uid?: number; gid?: number } = {}, entry = 'test/instance/fixtures/cli.ts') {
  const r = spawnSync(process.execPath, ['--import', 'tsx', entry, ...args], { encoding: 'utf8', ...as })
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
    // Back to old age after the holder wrote to it.
    age(lockedOld, 72)

    const list = listMeshDirs(root)
    expect(list.map((d) => d.name)).toEqual(['pos_current', 'pos_locked', 'pos_old1', 'pos_old2', 'pos_recent'])
    expect(list.find((d) => d.name === 'pos_locked')).toMatchObject({ lock: 'held', owner: { alive: true } })
    expect(list.find((d) => d.name === 'pos_old1')).toMatchObject({ lock: 'free' })

    const dry = cleanupMeshDirs(root, { dryRun: true, keep: [current] })
    expect(dry.removed.map((d) => d.dir).sort()).toEqual([old1, old2].sort())
    expect(existsSync(old1) && existsSync(old2)).toBe(true)

    const done = cleanupMeshDirs(root, { keep: [current] })
    expect(done.removed.map((d) => d.dir).sort()).toEqual([old1, old2].sort())
    expect(done.freedBytes).toBeGreaterThan(0)
    expect(done.failed).toEqual([])
    expect(existsSync(old1) || existsSync(old2)).toBe(false)
    for (const kept of [recent, lockedOld, current, join(root, 'not-a-mesh')]) expect(existsSync(kept)).toBe(true)
    expect(done.kept.find((k) => k.dir === lockedOld)?.reason).toMatch(/in use \(held, pid \d+\)/)
    expect(done.kept.find((k) => k.dir === recent)?.reason).toMatch(/used 1 h ago/)
    expect(done.kept.find((k) => k.dir === current)?.reason).toBe('kept by request')
  })

  it('never removes a directory this process holds', async () => {
    const root = tempRoot()
    const dir = await meshDir(root, 'pos_mine', 48)
    const inst = await openMeshInstance({ dir, healthIntervalMs: 0 })
    age(dir, 48)
    const report = cleanupMeshDirs(root, { olderThanMs: 3600_000 })
    expect(report.removed).toEqual([])
    expect(report.kept[0]?.reason).toMatch(/held-by-this-process/)
    expect(existsSync(dir)).toBe(true)
    await inst.close()
  })

  it('probes locks without writing, so listing does not make a directory look recently used', async () => {
    const root = tempRoot()
    const dir = join(root, 'pos_1')
    const inst = await openMeshInstance({ dir, healthIntervalMs: 0 })
    await inst.store.upsert('items', [{ _id: 'a' }])
    await inst.close()
    age(dir, 48)
    const before = readdirSync(dir).map((f) => [f, statSync(join(dir, f)).mtimeMs])
    const first = listMeshDirs(root)[0]
    expect(first).toMatchObject({ lock: 'free' })
    listMeshDirs(root)
    expect(readdirSync(dir).map((f) => [f, statSync(join(dir, f)).mtimeMs])).toEqual(before)
    expect(listMeshDirs(root)[0]?.lastUsedAt).toBe(first?.lastUsedAt)
    expect(cleanupMeshDirs(root).removed.map((d) => d.dir)).toEqual([dir])
  })

  it('rejects a missing root, a file as root and a mesh directory as root, deleting nothing', async () => {
    const root = tempRoot()
    writeFileSync(join(root, 'file'), 'x')
    const mesh = await meshDir(root, 'pos', 48)
    expect(() => listMeshDirs(join(root, 'missing'))).toThrow(
      expect.objectContaining({ code: 'DIRECTORY_UNUSABLE', message: expect.stringMatching(/does not exist/) }),
    )
    expect(() => cleanupMeshDirs(join(root, 'file'))).toThrow(
      expect.objectContaining({ code: 'DIRECTORY_UNUSABLE', message: expect.stringMatching(/is a file/) }),
    )
    expect(() => cleanupMeshDirs(mesh, { olderThanMs: 0 })).toThrow(
      expect.objectContaining({ code: 'INVALID_OPTIONS', message: expect.stringMatching(/itself a mesh directory/) }),
    )
    expect(() => cleanupMeshDirs(root, { olderThanMs: -1 })).toThrow(
      expect.objectContaining({ code: 'INVALID_OPTIONS' }),
    )
    expect(existsSync(join(root, 'file')) && existsSync(join(mesh, 'mesh.sqlite'))).toBe(true)
  })
})

// Root ignores permission bits, so as root the permission checks run in a child process as user
// `nobody`; as any other user they run as that user on a directory it may not read.
const isRoot = process.getuid?.() === 0
const other = isRoot ? { uid: 65534, gid: 65534 } : {}
const otherCanRunTests =
  !isRoot ||
  spawnSync(process.execPath, ['-e', 'require("fs").accessSync(process.cwd(), require("fs").constants.R_OK)'], other)
    .status === 0

describe.skipIf(!otherCanRunTests)('without permission', () => {
  it('listing, doctor, opening and cleanup report DIRECTORY_UNUSABLE and delete nothing', async () => {
    const root = tempRoot()
    chmodSync(root, 0o755)
    const old = await meshDir(root, 'pos_old', 48)
    const closed = join(root, 'closed')
    mkdirSync(closed, { mode: 0o700 })
    if (!isRoot) chmodSync(closed, 0o000)
    await meshDir(closed, 'pos_inside', 48)

    const list = cli(['dirs', 'list', '--root', closed, '--json'], other)
    expect(list.code).toBe(1)
    expect(JSON.parse(list.stdout).error).toMatchObject({ code: 'DIRECTORY_UNUSABLE' })
    expect(JSON.parse(list.stdout).error.message).toMatch(/permission denied/)

    const doctor = cli(['doctor', '--dir', join(closed, 'pos_inside')], other)
    expect(doctor.code).toBe(1)
    expect(doctor.stderr).toMatch(/DIRECTORY_UNUSABLE.*permission denied/)

    // Readable but not writable: the old directory cannot be removed, and is left whole.
    const cleanup = cli(['dirs', 'cleanup', '--root', root, '--older-than', '24h', '--json'], other)
    expect(cleanup.code).toBe(3)
    const report = JSON.parse(cleanup.stdout)
    expect(report.removed).toEqual([])
    expect(report.failed[0]).toMatchObject({
      dir: old,
      code: 'DIRECTORY_UNUSABLE',
      error: expect.stringMatching(/permission denied/),
    })
    expect(existsSync(join(old, 'mesh.sqlite'))).toBe(true)

    const open = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'test/instance/fixtures/try-open.ts', 'open', join(root, 'new-mesh')],
      { encoding: 'utf8', ...other },
    )
    expect(JSON.parse(open.stdout)).toMatchObject({
      error: 'DIRECTORY_UNUSABLE',
      message: expect.stringMatching(/permission/),
    })
    expect(existsSync(join(root, 'new-mesh'))).toBe(false)
    if (!isRoot) chmodSync(closed, 0o700)
  })
})

describe('doctor', () => {
  it('explains a held, a crashed-holder and a free directory, and rejects what is not a mesh', async () => {
    const root = tempRoot()
    const dir = await meshDir(root, 'pos', 0)
    const holder = spawnFixture(HOLDER, [dir, '0'])
    children.push(holder)
    const { ready: pid } = await holder.waitFor((l) => 'ready' in l)
    const held = diagnose(dir)
    expect(held).toMatchObject({ status: 'held', ok: false, storeVersion: '1', lockMode: 'kernel' })
    expect(held.info.owner).toMatchObject({ pid, alive: true })
    expect(held.findings[0]).toContain(`process ${pid}`)

    await holder.kill('SIGKILL')
    const after = diagnose(dir)
    expect(after).toMatchObject({ status: 'free-after-crash', ok: true })
    expect(after.info.owner).toMatchObject({ pid, alive: false })
    expect(after.findings.join(' ')).toMatch(/ended without closing/)

    const reopened = await openMeshInstance({ dir, healthIntervalMs: 0 })
    await reopened.close()
    expect(diagnose(dir)).toMatchObject({ status: 'free', ok: true })
    expect(diagnose(dir).siteId).toMatch(/^[A-Za-z0-9_-]+$/)

    expect(() => diagnose(join(root, 'nope'))).toThrow(expect.objectContaining({ code: 'DIRECTORY_UNUSABLE' }))
    writeFileSync(join(root, 'file'), 'x')
    expect(() => diagnose(join(root, 'file'))).toThrow(expect.objectContaining({ code: 'DIRECTORY_UNUSABLE' }))
    mkdirSync(join(root, 'plain'))
    expect(() => diagnose(join(root, 'plain'))).toThrow(expect.objectContaining({ code: 'STORE_INCOMPATIBLE' }))
    expect(readdirSync(join(root, 'plain'))).toEqual([])
  })

  it('reports a store it cannot read', async () => {
    const root = tempRoot()
    const dir = join(root, 'pos')
    mkdirSync(dir)
    writeFileSync(join(dir, 'mesh.sqlite'), 'this is not a database, just some bytes that are long enough to matter')
    const d = diagnose(dir)
    expect(d).toMatchObject({ status: 'unreadable', ok: false })
    expect(d.findings.join(' ')).toMatch(/cannot be read/)
  })
})

describe('heartbeat locks', () => {
  it('are exclusive, and taken over once the holder is gone', () => {
    const root = tempRoot()
    const a = DirectoryLock.tryAcquire(root, { mode: 'heartbeat', heartbeatMs: 50 })
    expect(a?.mode).toBe('heartbeat')
    expect(DirectoryLock.tryAcquire(root, { mode: 'heartbeat' })).toBeUndefined()
    expect(DirectoryLock.tryAcquire(root, { mode: 'kernel' })).toBeUndefined()
    expect(a?.check()).toBe(true)
    a?.release()
    expect(existsSync(join(root, 'meshmirror.owner.json'))).toBe(false)
    const b = DirectoryLock.tryAcquire(root, { mode: 'heartbeat' })
    expect(b).toBeDefined()
    b?.release()
  })

  it('break a stale record left by a holder on another host, and respect a fresh one', () => {
    const root = tempRoot()
    const record = { pid: 999999, hostname: 'elsewhere', command: 'x', acquiredAt: 'then', lockMode: 'heartbeat' }
    writeFileSync(join(root, 'meshmirror.owner.json'), JSON.stringify(record))
    // Fresh: another host's process cannot be checked, so its heartbeat is trusted.
    expect(DirectoryLock.tryAcquire(root, { mode: 'heartbeat', staleMs: 10_000 })).toBeUndefined()
    const old = new Date(Date.now() - 60_000)
    utimesSync(join(root, 'meshmirror.owner.json'), old, old)
    const lock = DirectoryLock.tryAcquire(root, { mode: 'heartbeat', staleMs: 10_000 })
    expect(lock).toBeDefined()
    expect(readOwner(root)).toMatchObject({ pid: process.pid, lockMode: 'heartbeat' })
    lock?.release()
  })
})

describe('dirs and doctor commands', () => {
  it('list, size, cleanup and doctor, as text and JSON, with documented exit codes', async () => {
    const root = tempRoot()
    const old = await meshDir(root, 'pos_old', 48)
    await meshDir(root, 'pos_new', 0)
    const list = cli(['dirs', 'list', '--root', root, '--json'])
    expect(list.code).toBe(0)
    const listed = JSON.parse(list.stdout)
    expect(listed.root).toBe(root)
    expect(listed.dirs.map((d: { name: string }) => d.name)).toEqual(['pos_new', 'pos_old'])
    expect(cli(['dirs', 'list', '--root', root]).stdout).toContain('pos_old')
    const size = JSON.parse(cli(['dirs', 'size', '--root', root, '--json']).stdout)
    expect(size.directories).toBe(2)
    expect(size.totalBytes).toBeGreaterThan(0)
    const dry = cli(['dirs', 'cleanup', '--root', root, '--older-than', '24h', '--dry-run'])
    expect(dry.stdout).toContain(`would remove ${old}`)
    expect(existsSync(old)).toBe(true)
    const real = JSON.parse(cli(['dirs', 'cleanup', '--root', root, '--older-than', '24h', '--json']).stdout)
    expect(real.removed.map((d: { dir: string }) => d.dir)).toEqual([old])
    expect(existsSync(old)).toBe(false)
    const bad = cli(['dirs', 'cleanup', '--root', root, '--older-than', 'soon'])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain('INVALID_OPTIONS')
    const doctor = cli(['doctor', '--dir', join(root, 'pos_new')])
    expect(doctor.code).toBe(0)
    expect(doctor.stdout).toContain('Free')
    const doctorJson = JSON.parse(cli(['doctor', '--dir', join(root, 'pos_new'), '--json']).stdout)
    expect(doctorJson).toMatchObject({ status: 'free', ok: true, storeVersion: '1' })
    const missing = cli(['doctor', '--dir', join(root, 'missing'), '--json'])
    expect(missing.code).toBe(1)
    expect(JSON.parse(missing.stdout).error.code).toBe('DIRECTORY_UNUSABLE')
    expect(cli(['dirs', 'list', '--root', join(root, 'missing')]).stderr).toMatch(/DIRECTORY_UNUSABLE/)
    expect(cli(['dirs', 'cleanup', '--help']).stdout).toMatch(/Exit codes:/)
    // The meshmirror command registers both.
    const help = cli(['--help'], {}, 'src/cli/main.ts').stdout
    expect(help).toMatch(/dirs/)
    expect(help).toMatch(/doctor/)
  })

  it('doctor exits 3 for a held directory, naming the holder', async () => {
    const root = tempRoot()
    const dir = join(root, 'pos')
    const holder = spawnFixture(HOLDER, [dir, '1'])
    children.push(holder)
    const { ready: pid } = await holder.waitFor((l) => 'ready' in l)
    const r = cli(['doctor', '--dir', dir])
    expect(r.code).toBe(3)
    expect(r.stdout).toContain(`owner pid ${pid}`)
    expect(r.stdout).toContain('alive')
  })
})
