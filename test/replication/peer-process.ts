import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import type { PeerConfig } from './fixtures/peer.js'

const FIXTURE = join(import.meta.dirname, 'fixtures', 'peer.ts')

type Line = Record<string, unknown>

/** A replicating peer running `fixtures/peer.ts` in a child process. */
export interface PeerProcess {
  readonly process: ChildProcess
  readonly port: number
  readonly site: string
  /** Documents it held when it started. */
  readonly documentsAtStart: number
  /** Sends a command and resolves with its reply. */
  call(cmd: string, args?: Record<string, unknown>): Promise<Line>
  /** Resolves with the first report line (past or future) matching `pred`. */
  waitFor(pred: (l: Line) => boolean, timeoutMs?: number): Promise<Line>
  readonly lines: Line[]
  stderr(): string
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** SIGKILL, no goodbye. */
  kill(): Promise<void>
  /** Closes the mesh and exits. Idempotent. */
  close(): Promise<void>
}

/** Starts a peer process and waits until it listens and dials. */
export async function startPeer(config: PeerConfig): Promise<PeerProcess> {
  const proc = spawn(process.execPath, ['--import', 'tsx', FIXTURE, JSON.stringify(config)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  const lines: Line[] = []
  const waiters = new Set<{ pred: (l: Line) => boolean; resolve: (l: Line) => void }>()
  proc.stderr?.on('data', (c: Buffer) => {
    err += c.toString()
  })
  proc.stdout?.on('data', (c: Buffer) => {
    out += c.toString()
    let nl = out.indexOf('\n')
    while (nl >= 0) {
      const text = out.slice(0, nl)
      out = out.slice(nl + 1)
      nl = out.indexOf('\n')
      let line: Line
      try {
        line = JSON.parse(text) as Line
      } catch {
        continue
      }
      lines.push(line)
      for (const w of [...waiters]) {
        if (w.pred(line)) {
          waiters.delete(w)
          w.resolve(line)
        }
      }
    }
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  )
  const waitFor = (pred: (l: Line) => boolean, timeoutMs = 20_000): Promise<Line> => {
    const found = lines.find(pred)
    if (found) return Promise.resolve(found)
    return new Promise((resolve, reject) => {
      const w = {
        pred,
        resolve: (l: Line) => {
          clearTimeout(timer)
          resolve(l)
        },
      }
      const timer = setTimeout(() => {
        waiters.delete(w)
        reject(new Error(`peer ${config.siteId} did not report in time; stderr: ${err}`))
      }, timeoutMs)
      void exited.then(({ code, signal }) =>
        setImmediate(() => {
          clearTimeout(timer)
          reject(new Error(`peer ${config.siteId} exited (${code ?? signal}); stderr: ${err}`))
        }),
      )
      waiters.add(w)
    })
  }
  let nextId = 1
  let closing: Promise<void> | undefined
  const ready = await waitFor((l) => l.t === 'ready', 30_000)
  return {
    process: proc,
    port: ready.port as number,
    site: ready.site as string,
    documentsAtStart: ready.documents as number,
    lines,
    stderr: () => err,
    exited,
    waitFor,
    async call(cmd, args = {}) {
      const id = nextId++
      const reply = waitFor((l) => l.id === id, 30_000)
      proc.stdin?.write(`${JSON.stringify({ id, cmd, ...args })}\n`)
      const r = await reply
      if (r.ok !== true) throw new Error(`peer ${config.siteId}: ${cmd} failed: ${String(r.error)}`)
      return r
    },
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
      await exited
    },
    close() {
      closing ??= (async () => {
        if (proc.exitCode === null && proc.signalCode === null) proc.stdin?.end()
        await exited
      })()
      return closing
    },
  }
}

/** Waits until every peer holds the same full state (documents, tombstones, metadata, version vectors). */
export async function peersConverged(peers: readonly PeerProcess[], timeoutMs = 20_000): Promise<Line[]> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const states = await Promise.all(peers.map((p) => p.call('state')))
    if (states.every((s) => s.hash === states[0]!.hash)) return states
    if (Date.now() > deadline) {
      const full = await Promise.all(peers.map((p) => p.call('state', { full: true })))
      throw new Error(
        `peers did not converge: ${JSON.stringify(states.map((s) => ({ vv: s.vv, n: s.documents })))}; ${firstDifference(full.map((s) => String(s.state)))}`,
      )
    }
    // Poll the condition; each state is a full scan, so not in a tight loop.
    await new Promise((r) => setTimeout(r, 25))
  }
}

/** The first document whose full state differs between peers, for the failure message. */
function firstDifference(states: readonly string[]): string {
  const parsed = states.map((s) => (JSON.parse(s) as { docs: { key: string }[] }).docs)
  const keys = [...new Set(parsed.flatMap((docs) => docs.map((d) => d.key)))].sort()
  for (const key of keys) {
    const versions = parsed.map((docs) => JSON.stringify(docs.find((d) => d.key === key) ?? null))
    if (versions.some((v) => v !== versions[0])) return `first difference at ${key}: ${versions.join(' vs ')}`
  }
  return 'documents equal'
}
