import { type ChildProcess, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { TillArgs } from './till.js'

/** A line a till reports. */
export type TillMessage =
  | { t: 'ready'; port: number; siteId: string }
  | { t: 'catalogue' }
  | { t: 'sale'; id: string; items: [string, number][] }
  | { t: 'stopped'; sold: number }
  | { t: 'offline' }
  | { t: 'online' }
  | { t: 'error'; phase: string; message: string }
  | { t: 'closed' }

const TILL_ENTRY = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './till.ts' : './till.js', import.meta.url))

/** One till's process, seen from the demo: its messages, its commands, its end. */
export class TillProcess {
  readonly child: ChildProcess
  readonly exited: Promise<number | null>
  private readonly listeners = new Set<(m: TillMessage) => void>()
  private stderr = ''

  constructor(
    readonly args: TillArgs,
    onMessage: (m: TillMessage) => void,
  ) {
    // Same runtime flags as this process (the TypeScript loader when run from source).
    this.child = spawn(process.execPath, [...process.execArgv, TILL_ENTRY, JSON.stringify(args)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    this.listeners.add(onMessage)
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      let m: TillMessage
      try {
        m = JSON.parse(line) as TillMessage
      } catch {
        return
      }
      for (const l of this.listeners) l(m)
    })
    this.child.stderr!.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-4000)
    })
    this.child.stdin!.on('error', () => undefined)
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)))
  }

  /** What the till wrote on stderr lately (for a failure report). */
  errors(): string {
    return this.stderr.trim()
  }

  /** Resolves with the first message of a type; rejects when the till exits first. */
  next<T extends TillMessage['t']>(type: T): Promise<Extract<TillMessage, { t: T }>> {
    return new Promise((resolve, reject) => {
      const listener = (m: TillMessage) => {
        if (m.t !== type) return
        this.listeners.delete(listener)
        resolve(m as Extract<TillMessage, { t: T }>)
      }
      this.listeners.add(listener)
      void this.exited.then((code) => {
        if (!this.listeners.delete(listener)) return
        reject(new Error(`${this.args.name} exited (code ${code}) before "${type}": ${this.errors() || 'no output'}`))
      })
    })
  }

  send(command: 'sell' | 'stop' | 'offline' | 'online' | 'exit'): void {
    if (this.child.exitCode === null && this.child.stdin?.writable) this.child.stdin.write(`${command}\n`)
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  /** Asks the till to close cleanly; kills it if it has not ended within `timeoutMs`. */
  async stop(timeoutMs: number): Promise<void> {
    if (!this.running) return
    this.send('exit')
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs)
    await this.exited
    clearTimeout(timer)
  }
}
