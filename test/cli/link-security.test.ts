import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { tempDirs } from '../bridge/helpers/wait.js'
import { type CliProcess, runCli, startCli } from './helpers.js'

const dirs = tempDirs()
const running: CliProcess[] = []

afterEach(async () => {
  for (const p of running.splice(0)) {
    if (p.child.exitCode === null) p.child.kill('SIGKILL')
    await p.exited
  }
  dirs.cleanup()
})

function config(dir: string, name: string, extra: Record<string, unknown>): string {
  const db = new Database(join(dir, `${name}.db`))
  db.exec('CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT)')
  db.close()
  const file = join(dir, `${name}.config.json`)
  writeFileSync(
    file,
    JSON.stringify({
      database: `./${name}.db`,
      mesh: { dir: `./${name}-mesh` },
      meshId: 'cli-links',
      secret: 'a test secret',
      tables: [{ table: 'notes' }],
      statusIntervalMs: 100,
      ...extra,
    }),
  )
  return file
}

/** Two peer processes linked (`a` listening, `b` dialing); resolves once both see a live link. */
async function linkedPair(
  dir: string,
  extra: Record<string, unknown>,
  extraB: Record<string, unknown> = {},
): Promise<void> {
  const a = startCli([
    'peer',
    '--json',
    '--config',
    config(dir, 'a', { ...extra, listen: { host: '127.0.0.1', port: 0 } }),
  ])
  running.push(a)
  const port = (await a.event('live')).port as number
  const b = startCli([
    'peer',
    '--json',
    '--config',
    config(dir, 'b', { ...extra, ...extraB, peers: [`ws://127.0.0.1:${port}`] }),
  ])
  running.push(b)
  const linked = (e: Record<string, unknown>) => (e.peers as { state: string }[]).some((p) => p.state === 'live')
  await Promise.all([a.event('status', linked), b.event('status', linked)])
}

describe('secret rotation through the config file', () => {
  it('links a device that moved to the new secret, keeping the old one, with one still on the old secret', {
    timeout: 60_000,
  }, async () => {
    const dir = dirs.make('rotation')
    // Mid-rotation: `b` took the new secret and still accepts the old one; `a` has not moved yet.
    await linkedPair(dir, {}, { secret: 'the new test secret', previousSecrets: ['a test secret'] })
    const report = JSON.parse((await runCli(['status', '--dir', join(dir, 'b-mesh'), '--json'])).stdout)
    expect(report.snapshot.peers).toMatchObject([{ state: 'live', security: 'psk' }])
    expect(report.warnings).toEqual([])
    // The peer's memory, as `status` shows it: resident, and the JavaScript heap within it.
    const memory = report.snapshot.memory as { rssMb: number; heapUsedMb: number; externalMb: number }
    expect(memory.heapUsedMb).toBeGreaterThan(0)
    expect(memory.rssMb).toBeGreaterThan(memory.heapUsedMb)
    expect(memory.externalMb).toBeGreaterThanOrEqual(0)
    const text = (await runCli(['status', '--dir', join(dir, 'b-mesh')])).stdout
    expect(text).toMatch(/memory +[\d.]+ MB resident, [\d.]+ MB of JavaScript heap in use/)
  })

  it('refuses a device holding only a secret the listener lacks, and status says why', {
    timeout: 60_000,
  }, async () => {
    const dir = dirs.make('stale')
    const a = startCli(['peer', '--json', '--config', config(dir, 'a', { listen: { host: '127.0.0.1', port: 0 } })])
    running.push(a)
    const port = (await a.event('live')).port as number
    const b = startCli([
      'peer',
      '--json',
      '--config',
      config(dir, 'b', { secret: 'the new test secret', peers: [`ws://127.0.0.1:${port}`] }),
    ])
    running.push(b)
    const refused = (e: Record<string, unknown>) =>
      (e.peers as { lastError?: string }[]).some((p) => /wrong secret/.test(p.lastError ?? ''))
    await b.event('status', refused)
    await a.event('status', (e) => /wrong secret/.test(String(e.lastError ?? '')))
    expect(b.stderr()).toMatch(/wrong secret/)
  })
})

describe('link security in status and doctor', () => {
  for (const insecure of [false, true]) {
    const what = insecure
      ? 'warns about insecure links in status, doctor and the snapshot'
      : 'reports encrypted links, with no warning'
    it(what, { timeout: 60_000 }, async () => {
      const dir = dirs.make(insecure ? 'insecure' : 'encrypted')
      await linkedPair(dir, insecure ? { insecure: true } : {})
      const meshDir = join(dir, 'a-mesh')
      const status = await runCli(['status', '--dir', meshDir, '--json'])
      expect(status.code).toBe(0)
      const report = JSON.parse(status.stdout)
      expect(report.snapshot.peers).toMatchObject([{ state: 'live', security: insecure ? 'insecure' : 'psk' }])
      const text = await runCli(['status', '--dir', meshDir])
      const doctor = await runCli(['doctor', '--dir', meshDir, '--json'])
      const doctorText = await runCli(['doctor', '--dir', meshDir])
      if (insecure) {
        expect(report.snapshot.insecure).toBe(true)
        expect(report.snapshot.warnings).toEqual([expect.stringMatching(/not encrypted \(insecure: true\)/)])
        expect(report.warnings).toEqual(report.snapshot.warnings)
        expect(text.stdout).toMatch(/warning {4}replication links are not encrypted/)
        expect(text.stdout).toMatch(/live NOT ENCRYPTED/)
        expect(text.stdout).toMatch(/status {5}live · 1 peer · .* · links NOT ENCRYPTED/)
        expect(JSON.parse(doctor.stdout).warnings).toEqual(report.warnings)
        expect(doctorText.stdout).toMatch(/warning: replication links are not encrypted/)
      } else {
        expect(report.snapshot.insecure).toBeUndefined()
        expect(report.snapshot.warnings).toBeUndefined()
        expect(report.warnings).toEqual([])
        expect(text.stdout).not.toMatch(/warning|NOT ENCRYPTED/)
        expect(JSON.parse(doctor.stdout).warnings).toEqual([])
        expect(doctorText.stdout).not.toMatch(/warning/)
      }
    })
  }
})
