import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { ErrorCode, MeshmirrorError } from '../errors.js'
import { freePort, isListening } from '../util/loopback-port.js'

/** The demo's hub: a `nats-server` with JetStream on a free loopback port, its store in the demo's directory. */
export interface DemoHub {
  readonly url: string
  readonly port: number
  stop(): Promise<void>
}

export async function startDemoHub(dir: string): Promise<DemoHub> {
  try {
    execFileSync('nats-server', ['--version'], { stdio: 'ignore' })
  } catch {
    throw new MeshmirrorError(
      ErrorCode.DEPENDENCY_MISSING,
      'meshmirror demo --hub runs a NATS JetStream hub: nats-server is not installed (Debian: apt-get install nats-server; or https://nats.io).',
      { details: { dependency: 'nats-server' } },
    )
  }
  mkdirSync(dir, { recursive: true })
  const port = await freePort()
  const file = join(dir, 'nats.conf')
  writeFileSync(file, `listen: "127.0.0.1:${port}"\njetstream { store_dir: "${join(dir, 'js')}" }\n`)
  let output = ''
  const child: ChildProcess = spawn('nats-server', ['-c', file], { stdio: ['ignore', 'pipe', 'pipe'] })
  child.stdout?.on('data', (d) => {
    output = (output + String(d)).slice(-4000)
  })
  child.stderr?.on('data', (d) => {
    output = (output + String(d)).slice(-4000)
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const until = Date.now() + 15_000
  while (!(await isListening(port))) {
    if (child.exitCode !== null || Date.now() > until) {
      child.kill('SIGKILL')
      throw new MeshmirrorError(ErrorCode.DEPENDENCY_MISSING, `nats-server did not start: ${output.trim()}`)
    }
    await delay(50)
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM')
      await exited
    },
  }
}

/** A TCP relay to the hub: a shop's line to the internet, which the demo cuts and restores. */
export interface ShopLine {
  readonly url: string
  cut(): void
  restore(): void
  close(): Promise<void>
}

export async function startShopLine(target: number): Promise<ShopLine> {
  const sockets = new Set<Socket>()
  let down = false
  const server: Server = createServer((client) => {
    if (down) {
      client.destroy()
      return
    }
    const upstream = connect(target, '127.0.0.1')
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      sockets.add(from)
      from.on('close', () => {
        sockets.delete(from)
        to.destroy()
      })
      from.on('error', () => from.destroy())
      from.pipe(to)
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `nats://127.0.0.1:${port}`,
    cut() {
      down = true
      for (const s of sockets) s.destroy()
    },
    restore() {
      down = false
    },
    close() {
      for (const s of sockets) s.destroy()
      return new Promise((resolve) => server.close(() => resolve()))
    },
  }
}
