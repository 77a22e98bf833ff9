import { createServer as createHttpServer, type Server } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { WebSocket, WebSocketServer } from 'ws'
import { AbortError, ErrorCode, MeshmirrorError } from '../errors.js'
import type { Connection, Listener, Transport } from './transport.js'

export interface WsTransportOptions {
  /** Largest accepted frame, in bytes. Larger frames close the connection. Default 16 MiB. */
  maxFrameBytes?: number
  /** Ping period; a peer silent for two periods is dropped. Default 10,000 ms. */
  keepAliveMs?: number
  /** TLS for `wss`: the listener's certificate and key, and CAs to trust when dialing. */
  tls?: { cert?: string | Buffer; key?: string | Buffer; ca?: string | Buffer | (string | Buffer)[] }
  /** Connection timeout when dialing. Default 5,000 ms. */
  connectTimeoutMs?: number
  /** Receives errors of a listening server after it started (the replicator logs them). */
  onServerError?: (error: Error) => void
}

class WsConnection implements Connection {
  private closed = false
  private alive = true
  private timer: NodeJS.Timeout | undefined
  private readonly closeListeners: ((reason: string, error?: Error) => void)[] = []
  private listener: ((frame: string) => void) | undefined
  private readonly early: string[] = []

  constructor(
    private readonly ws: WebSocket,
    readonly remote: string,
    keepAliveMs: number,
  ) {
    // Frames can arrive in the same tick as 'open', before anyone listens: keep them.
    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        this.fault('binary frames are not part of the protocol')
        return
      }
      const frame = data.toString()
      if (this.listener) this.listener(frame)
      else this.early.push(frame)
    })
    ws.on('pong', () => {
      this.alive = true
    })
    // 1006: the connection dropped without a closing handshake.
    ws.on('close', (code, reason) =>
      this.finish(reason.toString() || (code === 1006 ? 'connection lost' : `closed (${code})`)),
    )
    // ws reports frames that break its rules (too large, invalid) as WS_ERR_* errors; others are network faults.
    ws.on('error', (error) =>
      this.finish(error.message, String((error as { code?: unknown }).code).startsWith('WS_ERR_') ? error : undefined),
    )
    this.timer = setInterval(() => {
      if (!this.alive) {
        ws.terminate()
        this.finish('keep-alive timeout')
        return
      }
      this.alive = false
      ws.ping()
    }, keepAliveMs)
    this.timer.unref()
  }

  get buffered(): number {
    return this.ws.bufferedAmount
  }

  send(frame: string): void {
    if (!this.closed && this.ws.readyState === WebSocket.OPEN) this.ws.send(frame)
  }

  onMessage(listener: (frame: string) => void): void {
    this.listener = listener
    for (const frame of this.early.splice(0)) listener(frame)
  }

  onClose(listener: (reason: string, error?: Error) => void): void {
    this.closeListeners.push(listener)
  }

  close(reason: string): void {
    if (this.closed) return
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) {
      // Close reasons are limited to 123 bytes.
      this.ws.close(1008, Buffer.from(reason).subarray(0, 120).toString())
      setTimeout(() => this.ws.terminate(), 1000).unref()
    }
    this.finish(reason)
  }

  /** Closes for a fault of the other end. */
  private fault(reason: string): void {
    const error = new Error(reason)
    if (!this.closed) this.ws.close(1003, reason)
    this.finish(reason, error)
  }

  private finish(reason: string, error?: Error): void {
    if (this.closed) return
    this.closed = true
    clearInterval(this.timer)
    for (const l of this.closeListeners) l(reason, error)
  }
}

/** WebSocket transport (`ws://` and, with `tls`, `wss://`). */
export function wsTransport(options: WsTransportOptions = {}): Transport {
  const maxPayload = options.maxFrameBytes ?? 16 * 1024 * 1024
  const keepAliveMs = options.keepAliveMs ?? 10_000
  return {
    async listen({ host, port }, onConnection): Promise<Listener> {
      const server: Server =
        options.tls?.cert && options.tls.key
          ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key })
          : createHttpServer()
      await new Promise<void>((resolve, reject) => {
        const onError = (error: NodeJS.ErrnoException) => {
          reject(
            error.code === 'EADDRINUSE'
              ? new MeshmirrorError(
                  ErrorCode.ADDRESS_IN_USE,
                  `Cannot listen for peers on ${host}:${port}: another process uses that address. Stop it, or choose another listen port (0 picks a free one).`,
                  { cause: error, details: { host, port } },
                )
              : error,
          )
        }
        server.once('error', onError)
        server.listen(port, host, () => {
          server.off('error', onError)
          resolve()
        })
      })
      // Attached once listening, so a failure to listen rejects above instead of surfacing on the server.
      const wss = new WebSocketServer({ server, maxPayload })
      wss.on('error', (error) => options.onServerError?.(error))
      wss.on('connection', (ws, req) => {
        const remote = `inbound ${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`
        onConnection(new WsConnection(ws, remote, keepAliveMs))
      })
      const address = server.address() as AddressInfo
      return {
        host: address.address,
        port: address.port,
        close: () =>
          new Promise<void>((resolve) => {
            for (const c of wss.clients) c.terminate()
            wss.close(() => server.close(() => resolve()))
          }),
      }
    },

    dial(url, signal): Promise<Connection> {
      return new Promise((resolve, reject) => {
        const ws = new WebSocket(url, {
          maxPayload,
          handshakeTimeout: options.connectTimeoutMs ?? 5_000,
          ...(options.tls?.ca ? { ca: options.tls.ca } : {}),
        })
        const onAbort = () => {
          ws.terminate()
          reject(new AbortError(signal?.reason))
        }
        signal?.addEventListener('abort', onAbort, { once: true })
        ws.once('open', () => {
          signal?.removeEventListener('abort', onAbort)
          ws.removeAllListeners('error')
          resolve(new WsConnection(ws, url, keepAliveMs))
        })
        ws.once('error', (error) => {
          signal?.removeEventListener('abort', onAbort)
          reject(error)
        })
      })
    },
  }
}
