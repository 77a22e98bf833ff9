import { type ChildProcess, fork } from 'node:child_process'
import { join } from 'node:path'
import type { Direction } from './proxy.js'

/** What the harness asks the network process to do. */
export type NetworkOp =
  | { op: 'open'; ports: number[] }
  | { op: 'cut'; a: number; b: number }
  | { op: 'blackhole'; a: number; b: number; direction: Direction }
  | { op: 'throttle'; a: number; b: number; latencyMs: number; bytesPerSecond: number }
  | { op: 'end' }
  | { op: 'drop'; a: number; b: number }
  | { op: 'heal' }

/** A request to the network process; `token` names its reply, or the fault to end later. */
export type NetworkRequest = NetworkOp & { token: number }

/** A reply: the proxies' ports after `open`, the connections closed by `drop`. */
export interface NetworkReply {
  token: number
  ports?: number[][]
  dropped?: number
}

/**
 * The links between the tills: a TCP proxy per ordered pair (`a` dials `b`
 * through link a→b), run in a process of their own, so that nothing the
 * harness does (reading five databases, say) ever holds up a byte on them.
 */
export class Network {
  private next = 1
  private readonly waiting = new Map<number, (reply: NetworkReply) => void>()
  private ports: number[][] = []

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (reply: NetworkReply) => {
      this.waiting.get(reply.token)?.(reply)
      this.waiting.delete(reply.token)
    })
  }

  /** Starts the network process with links to the peers listening on `ports`. */
  static async open(ports: readonly number[], tsxArgs: readonly string[]): Promise<Network> {
    const child = fork(join(import.meta.dirname, 'network-process.ts'), [], {
      execArgv: [...tsxArgs],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    const network = new Network(child)
    const reply = await network.request({ op: 'open', ports: [...ports] })
    network.ports = reply.ports ?? []
    return network
  }

  private request(message: NetworkOp): Promise<NetworkReply> {
    const token = this.next++
    return new Promise((resolve) => {
      this.waiting.set(token, resolve)
      this.child.send({ ...message, token })
    })
  }

  /** The URL `a` dials to reach `b`. */
  url(a: number, b: number): string {
    return `ws://127.0.0.1:${this.ports[a]![b]}`
  }

  private fault(message: NetworkOp): () => void {
    const token = this.next++
    this.child.send({ ...message, token } satisfies NetworkRequest)
    let ended = false
    return () => {
      if (ended) return
      ended = true
      this.child.send({ op: 'end', token } satisfies NetworkRequest)
    }
  }

  /** Link a→b closes its connections and refuses new ones, until the returned function is called. */
  cut(a: number, b: number): () => void {
    return this.fault({ op: 'cut', a, b })
  }

  /** Link a→b drops the bytes going one way, until the returned function is called. */
  blackhole(a: number, b: number, direction: Direction): () => void {
    return this.fault({ op: 'blackhole', a, b, direction })
  }

  /** Link a→b gets latency and a bandwidth limit, until the returned function is called. */
  throttle(a: number, b: number, latencyMs: number, bytesPerSecond: number): () => void {
    return this.fault({ op: 'throttle', a, b, latencyMs, bytesPerSecond })
  }

  /** Closes the open connections of link a→b; resolves with how many there were. */
  async drop(a: number, b: number): Promise<number> {
    return (await this.request({ op: 'drop', a, b })).dropped ?? 0
  }

  /** Ends every fault on every link. */
  async heal(): Promise<void> {
    await this.request({ op: 'heal' })
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.child.exitCode !== null) return resolve()
      this.child.once('exit', () => resolve())
      this.child.kill('SIGTERM')
    })
  }
}
