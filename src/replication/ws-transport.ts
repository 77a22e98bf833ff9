import { createServer as createHttpServer, type Server } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { type AddressInfo, createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { type ClientOptions, WebSocket, WebSocketServer } from 'ws'
import { AbortError, ErrorCode, MeshmirrorError, ValidationError } from '../errors.js'
import { commonKey, LINK_CIPHER, type LinkKey, linkKeys } from './link-keys.js'
import type { Connection, LinkSecurity, Listener, Transport } from './transport.js'

export interface WsTransportOptions {
  /** Largest accepted frame, in bytes. Larger frames close the connection. Default 16 MiB. */
  maxFrameBytes?: number
  /** Ping period; a peer silent for two periods is dropped. Default 10,000 ms. */
  keepAliveMs?: number
  /** Certificate TLS for `wss`: the listener's certificate and key (it then serves `wss` only), and CAs to trust when dialing `wss://`. */
  tls?: { cert?: string | Buffer; key?: string | Buffer; ca?: string | Buffer | (string | Buffer)[] }
  /** Connection timeout when dialing. Default 5,000 ms. */
  connectTimeoutMs?: number
  /** Receives errors of a listening server after it started (the replicator logs them). */
  onServerError?: (error: Error) => void
  /**
   * Encrypts and authenticates `ws://` links with TLS keyed by the mesh's
   * secrets (pre-shared keys derived from each secret and the mesh id; the
   * first secret is preferred). The listener then accepts nothing else.
   * Without it, `ws://` links are plain WebSocket: readable by anyone on the
   * network path.
   */
  psk?: { meshId: string; secrets: readonly string[] }
  /**
   * Receives a connection the listener refused before it became a link:
   * `PEER_AUTH_FAILED` for a peer holding none of the mesh's secrets,
   * `PROTOCOL_ERROR` for a peer speaking plain where TLS is required, or
   * the other way round.
   */
  onRefused?: (error: MeshmirrorError, remote: string) => void
}

/** TLS settings of default links: TLS 1.2 (where Node offers PSK) with one ECDHE-PSK AEAD suite. */
const PSK_TLS = { ciphers: LINK_CIPHER, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' } as const

/** How long a new connection to a PSK listener may take to send its first bytes. */
const FIRST_BYTES_MS = 10_000

function refusal(code: ErrorCode, remote: string, message: string, cause?: unknown): MeshmirrorError {
  return new MeshmirrorError(code, `Peer ${remote}: ${message}`, {
    ...(cause ? { cause } : {}),
    details: { remote, reason: message },
  })
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
    readonly security: LinkSecurity,
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

/** The remote of an inbound socket, for logs. */
function inbound(socket: { remoteAddress?: string | undefined; remotePort?: number | undefined }): string {
  return `inbound ${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`
}

const NO_COMMON_SECRET = 'holds none of the mesh secrets of this peer (wrong secret, or another mesh id)'

/** Why a PSK listener's TLS handshake failed, when it is the peer's doing; undefined for network noise. */
function serverTlsRefusal(error: Error & { code?: string }, remote: string): MeshmirrorError | undefined {
  const code = error.code ?? ''
  if (code === 'ERR_SSL_PSK_IDENTITY_NOT_FOUND' || /BAD_RECORD_MAC|DECRYPT/.test(code)) {
    return refusal(ErrorCode.PEER_AUTH_FAILED, remote, `${NO_COMMON_SECRET}: TLS handshake refused`, error)
  }
  if (code === 'ERR_SSL_NO_SHARED_CIPHER' || code === 'ERR_SSL_UNSUPPORTED_PROTOCOL') {
    return refusal(
      ErrorCode.PROTOCOL_ERROR,
      remote,
      `offers no cipher of encrypted meshmirror links (${LINK_CIPHER}): an older meshmirror, or a peer dialing wss:// with certificates`,
      error,
    )
  }
  return undefined
}

/** What a failed dial means, in words an operator can act on. */
function dialFailure(error: Error, url: string, o: { psk: boolean; noCommonKey: string | undefined }): Error {
  const m = error.message
  if (!o.psk) {
    return url.startsWith('wss://') && /handshake failure|no shared cipher|unsupported protocol/i.test(m)
      ? refusal(
          ErrorCode.PROTOCOL_ERROR,
          url,
          'accepts no certificate TLS: a meshmirror listener encrypting with the mesh secret (dial it with ws://), or a TLS server of another kind',
          error,
        )
      : error
  }
  if (o.noCommonKey !== undefined || /unknown psk identity|bad record mac|decrypt/i.test(m)) {
    return refusal(ErrorCode.PEER_AUTH_FAILED, url, `${NO_COMMON_SECRET}: TLS handshake refused`, error)
  }
  if (/wrong version number|packet length too long|record layer failure/i.test(m)) {
    return refusal(
      ErrorCode.PROTOCOL_ERROR,
      url,
      'does not speak TLS: its listener is configured `insecure: true` and this peer encrypts its links; every peer of a mesh must agree',
      error,
    )
  }
  if (/handshake failure|no shared cipher|unsupported protocol/i.test(m)) {
    return refusal(
      ErrorCode.PROTOCOL_ERROR,
      url,
      'does not accept encrypted meshmirror links: a listener with certificates (dial it with wss://), or an older meshmirror',
      error,
    )
  }
  return error
}

const PLAIN_REFUSED =
  'This meshmirror listener accepts encrypted links only, and the dialing peer is configured `insecure: true`: every peer of a mesh must agree.\n'

/**
 * WebSocket transport. `ws://` links are plain, or, with `psk`, TLS keyed
 * by the mesh's secrets; `wss://` links use certificates (`tls`).
 */
export function wsTransport(options: WsTransportOptions = {}): Transport {
  const maxPayload = options.maxFrameBytes ?? 16 * 1024 * 1024
  const keepAliveMs = options.keepAliveMs ?? 10_000
  if (options.psk && options.psk.secrets.length === 0) {
    throw new ValidationError(ErrorCode.INVALID_OPTIONS, 'wsTransport: psk.secrets must hold at least one secret.')
  }
  const keys = options.psk ? linkKeys(options.psk.meshId, options.psk.secrets) : undefined
  const refused = (error: MeshmirrorError, remote: string) => options.onRefused?.(error, remote)
  return {
    async listen({ host, port }, onConnection): Promise<Listener> {
      const { server, bound, sockets, security } = listenerFor(options, keys, refused)
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
        bound.once('error', onError)
        bound.listen(port, host, () => {
          bound.off('error', onError)
          resolve()
        })
      })
      // Attached once listening, so a failure to listen rejects above instead of surfacing on the server.
      const wss = new WebSocketServer({ server, maxPayload })
      wss.on('error', (error) => options.onServerError?.(error))
      if (bound !== server) bound.on('error', (error) => options.onServerError?.(error))
      wss.on('connection', (ws, req) => {
        onConnection(new WsConnection(ws, inbound(req.socket), keepAliveMs, security))
      })
      const address = bound.address() as AddressInfo
      return {
        host: address.address,
        port: address.port,
        close: () =>
          new Promise<void>((resolve) => {
            for (const c of wss.clients) c.terminate()
            for (const s of sockets) s.destroy()
            wss.close(() => bound.close(() => resolve()))
          }),
      }
    },

    dial(url, signal): Promise<Connection> {
      const psk = keys !== undefined && url.startsWith('ws://')
      const security: LinkSecurity = psk ? 'psk' : url.startsWith('wss://') ? 'certificate' : 'insecure'
      let noCommonKey: string | undefined
      // `ws` passes these through to `tls.connect` (its typings predate Node's PSK and checkServerIdentity returning undefined).
      const tls: ClientOptions = psk
        ? ({
            ...PSK_TLS,
            // The PSK authenticates the listener: only a holder of the mesh secret completes the handshake.
            checkServerIdentity: () => undefined,
            pskCallback: (hint: string | null) => {
              const key = commonKey(keys, hint ? hint.split(',') : [])
              if (!key) noCommonKey = hint ?? ''
              // With no key in common the listener refuses the handshake, and says so in its log too.
              const use = key ?? (keys[0] as LinkKey)
              return { psk: use.psk, identity: use.id }
            },
          } as unknown as ClientOptions)
        : options.tls?.ca
          ? { ca: options.tls.ca }
          : {}
      return new Promise((resolve, reject) => {
        let settled = false
        const fail = (error: Error) => {
          if (settled) return
          settled = true
          signal?.removeEventListener('abort', onAbort)
          reject(error)
        }
        const ws = new WebSocket(psk ? `wss://${url.slice('ws://'.length)}` : url, {
          maxPayload,
          handshakeTimeout: options.connectTimeoutMs ?? 5_000,
          ...tls,
        })
        const onAbort = () => {
          ws.terminate()
          fail(new AbortError(signal?.reason))
        }
        signal?.addEventListener('abort', onAbort, { once: true })
        ws.once('unexpected-response', (req, res) => {
          req.destroy()
          ws.terminate()
          fail(
            res.statusCode === 426 && !psk
              ? refusal(
                  ErrorCode.PROTOCOL_ERROR,
                  url,
                  'accepts encrypted links only, and this peer is configured `insecure: true`; every peer of a mesh must agree',
                )
              : new Error(`Unexpected server response: ${res.statusCode}`),
          )
        })
        ws.once('open', () => {
          if (settled) return
          settled = true
          signal?.removeEventListener('abort', onAbort)
          ws.removeAllListeners('error')
          resolve(new WsConnection(ws, url, keepAliveMs, security))
        })
        ws.on('error', (error) => fail(dialFailure(error, url, { psk, noCommonKey })))
      })
    },
  }
}

/** The server a listener runs: certificates for `wss`, PSK TLS behind a first-bytes check, or plain HTTP. */
function listenerFor(
  options: WsTransportOptions,
  keys: LinkKey[] | undefined,
  refused: (error: MeshmirrorError, remote: string) => void,
): { server: Server; bound: Server | NetServer; sockets: Set<Socket>; security: LinkSecurity } {
  const sockets = new Set<Socket>()
  if (options.tls?.cert && options.tls.key) {
    const server = createHttpsServer({ cert: options.tls.cert, key: options.tls.key })
    return { server, bound: server, sockets, security: 'certificate' }
  }
  if (!keys) {
    const server = createHttpServer()
    // A TLS ClientHello (first byte 22) at a plain listener: a peer that encrypts, where this one is insecure.
    server.on('clientError', (error: Error & { rawPacket?: Buffer; code?: string }, socket) => {
      if (error.rawPacket?.[0] === 0x16) {
        const remote = inbound(socket as Socket)
        refused(
          refusal(
            ErrorCode.PROTOCOL_ERROR,
            remote,
            'dialed an encrypted link, and this listener is configured `insecure: true`; every peer of a mesh must agree',
          ),
          remote,
        )
      }
      if (socket.writable && error.code !== 'ECONNRESET')
        socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n')
      else socket.destroy()
    })
    return { server, bound: server, sockets, security: 'insecure' }
  }
  const server = createHttpsServer({
    ...PSK_TLS,
    handshakeTimeout: FIRST_BYTES_MS,
    // The key ids this listener holds, so a dialing peer picks a secret both hold (several while rotating).
    pskIdentityHint: keys.map((k) => k.id).join(','),
    pskCallback: (_socket, identity) => keys.find((k) => k.id === identity)?.psk ?? null,
  })
  server.on('tlsClientError', (error, socket) => {
    const parent = (socket as TLSSocket & { _parent?: Socket })._parent ?? socket
    const remote = inbound(parent)
    const reason = serverTlsRefusal(error, remote)
    if (reason) refused(reason, remote)
  })
  // TLS records start with 22 (handshake); a plain WebSocket client starts with `GET `: tell it why it is refused.
  // noDelay: no Nagle delay on small frames, as an HTTP server's own connections get.
  const front = createNetServer({ noDelay: true }, (socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    socket.on('error', () => socket.destroy())
    socket.setTimeout(FIRST_BYTES_MS, () => socket.destroy())
    socket.once('data', (chunk: Buffer) => {
      socket.setTimeout(0)
      socket.pause()
      socket.unshift(chunk)
      if (chunk[0] === 0x16) {
        server.emit('connection', socket)
        return
      }
      if (!/^[A-Z]+ /.test(chunk.subarray(0, 8).toString('latin1'))) {
        socket.destroy()
        return
      }
      const remote = inbound(socket)
      refused(
        refusal(
          ErrorCode.PROTOCOL_ERROR,
          remote,
          'dialed a plain link (`insecure: true`), and this listener accepts encrypted links only; every peer of a mesh must agree',
        ),
        remote,
      )
      socket.end(
        `HTTP/1.1 426 Encrypted Link Required\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(PLAIN_REFUSED)}\r\n\r\n${PLAIN_REFUSED}`,
      )
    })
  })
  return { server, bound: front, sockets, security: 'psk' }
}
