import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, isListening } from '../../src/util/loopback-port.js'

/**
 * Real `nats-server` processes for the hub's tests: each on free ports on
 * 127.0.0.1, with a generated config and its JetStream store in a temp dir.
 * `.ci/run` installs the binary (Debian package `nats-server`) when missing.
 */

export function natsServerBinary(): string | undefined {
  try {
    return execFileSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' }).trim() || undefined
  } catch {
    return undefined
  }
}

/** Why the hub's tests cannot run here, or undefined when they can. Under CI a missing binary fails instead. */
export function natsMissing(): string | undefined {
  if (natsServerBinary()) return undefined
  const why = 'nats-server is not installed (apt-get install nats-server; .ci/run does it): the hub tests are skipped'
  if (process.env.CI) throw new Error(why)
  console.warn(why)
  return why
}

export interface NatsServer {
  readonly name: string
  readonly port: number
  readonly url: string
  readonly dir: string
  /** Starts the process (again, keeping its store). */
  start(): Promise<void>
  /** SIGTERM (or `signal`) and wait for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>
  readonly running: boolean
  /** Removes the store (after stop). */
  remove(): void
}

export interface ServerSpec {
  name?: string
  /** Extra config text (accounts, authorization, cluster…). */
  extra?: string | ((s: { port: number; dir: string }) => string)
  port?: number
}

class Server implements NatsServer {
  private child: ChildProcess | undefined
  private exited: Promise<void> = Promise.resolve()
  readonly url: string
  output = ''

  constructor(
    readonly name: string,
    readonly port: number,
    readonly dir: string,
    private readonly configFile: string,
  ) {
    this.url = `nats://127.0.0.1:${port}`
  }

  get running(): boolean {
    return this.child !== undefined
  }

  async start(): Promise<void> {
    if (this.child) return
    const child = spawn(natsServerBinary() ?? 'nats-server', ['-c', this.configFile], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    this.child = child
    child.stdout?.on('data', (d) => {
      this.output = (this.output + String(d)).slice(-20_000)
    })
    child.stderr?.on('data', (d) => {
      this.output = (this.output + String(d)).slice(-20_000)
    })
    this.exited = new Promise((resolve) =>
      child.once('exit', () => {
        if (this.child === child) this.child = undefined
        resolve()
      }),
    )
    const until = Date.now() + 15_000
    while (!(await isListening(this.port))) {
      if (!this.child) throw new Error(`nats-server ${this.name} exited:\n${this.output}`)
      if (Date.now() > until) throw new Error(`nats-server ${this.name} did not listen:\n${this.output}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child
    if (!child) return
    child.kill(signal)
    await this.exited
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true })
  }
}

/** Starts one server with JetStream. */
export async function startNatsServer(spec: ServerSpec = {}): Promise<NatsServer> {
  const port = spec.port ?? (await freePort())
  const dir = mkdtempSync(join(tmpdir(), 'mm-nats-'))
  const name = spec.name ?? `hub-${port}`
  const extra = typeof spec.extra === 'function' ? spec.extra({ port, dir }) : (spec.extra ?? '')
  const file = join(dir, 'nats.conf')
  writeFileSync(
    file,
    `server_name: "${name}"\nlisten: "127.0.0.1:${port}"\njetstream {\n  store_dir: "${join(dir, 'js')}"\n}\n${extra}\n`,
  )
  const s = new Server(name, port, dir, file)
  await s.start()
  return s
}

/** Starts a JetStream cluster of `size` servers (routes between all), ready for R3 streams. */
export async function startNatsCluster(size = 3): Promise<NatsServer[]> {
  const ports = await Promise.all(Array.from({ length: size }, () => freePort()))
  const routes = await Promise.all(Array.from({ length: size }, () => freePort()))
  const servers = await Promise.all(
    ports.map((port, i) =>
      startNatsServer({
        name: `hub-${i + 1}`,
        port,
        extra: `cluster {\n  name: "hub"\n  listen: "127.0.0.1:${routes[i]}"\n  routes: [${routes
          .filter((_, j) => j !== i)
          .map((r) => `"nats-route://127.0.0.1:${r}"`)
          .join(', ')}]\n}\n`,
      }),
    ),
  )
  return servers
}

export async function stopAll(servers: NatsServer[]): Promise<void> {
  for (const s of servers) {
    await s.stop()
    s.remove()
  }
}
