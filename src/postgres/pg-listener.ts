import pg from 'pg'
import { backoffMs } from '../util/backoff.js'
import { q } from './pg-capture.js'

/**
 * One connection that `LISTEN`s on the outbox's channel and calls the
 * listeners on every notification: the capture triggers notify in the
 * writing transaction, so a listener runs once it commits. Nothing polls.
 * A lost connection is opened again with backoff, and the listeners are
 * called once it is back (a notification sent meanwhile was missed).
 */
export class OutboxListener {
  private client: pg.Client | undefined
  private readonly listeners = new Set<() => void>()
  private stopped = false
  private attempt = 0
  private timer: NodeJS.Timeout | undefined
  /** True while the LISTEN connection is up. */
  listening = false
  /** Times the connection was opened again after a loss. */
  reconnects = 0

  constructor(
    private readonly config: pg.ClientConfig,
    private readonly channel: string,
  ) {}

  /** Connects and listens; rejects when the first connection fails. */
  async start(): Promise<void> {
    await this.connect()
  }

  private async connect(): Promise<void> {
    const client = new pg.Client(this.config)
    client.on('notification', (n) => {
      if (n.channel === this.channel) this.wake()
    })
    const lost = () => {
      if (this.client !== client) return
      this.client = undefined
      this.listening = false
      client.removeAllListeners('notification')
      client.end().catch(() => undefined)
      this.retry()
    }
    client.on('error', lost)
    client.on('end', lost)
    await client.connect()
    await client.query(`LISTEN ${q(this.channel)}`)
    if (this.stopped) {
      await client.end().catch(() => undefined)
      return
    }
    this.client = client
    this.listening = true
    this.attempt = 0
  }

  private retry(): void {
    if (this.stopped || this.timer) return
    const wait = backoffMs(this.attempt++, { initialMs: 50, maxMs: 5000, jitter: true })
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.connect().then(
        () => {
          this.reconnects++
          this.wake()
        },
        () => this.retry(),
      )
    }, wait)
    this.timer.unref()
  }

  private wake(): void {
    for (const l of this.listeners) {
      try {
        l()
      } catch {
        // A listener's failure is its own.
      }
    }
  }

  add(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  async stop(): Promise<void> {
    this.stopped = true
    if (this.timer) clearTimeout(this.timer)
    const client = this.client
    this.client = undefined
    this.listening = false
    if (client) {
      client.removeAllListeners('notification')
      await client.end().catch(() => undefined)
    }
  }
}
