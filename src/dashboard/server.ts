import { readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { ErrorCode, MeshmirrorError } from '../errors.js'
import { type Logger, silentLogger } from '../logger.js'
import { type DashboardOptions, isLoopback, resolveAccess, tokenMatches } from './access.js'
import { DashboardState } from './dashboard-state.js'
import type { DashboardSource } from './source.js'

/** A dashboard being served. */
export interface RunningDashboard extends AsyncDisposable {
  /** The page's address (with the token, when one is required, as `?token=`). */
  readonly url: string
  readonly host: string
  readonly port: number
  /** The token browsers must present, when one is required. */
  readonly token: string | undefined
  /** True when the token was generated (not given): print it for the user. */
  readonly tokenGenerated: boolean
  close(): Promise<void>
}

const ASSETS: Record<string, string> = {
  '/': 'index.html',
  '/app.js': 'app.js',
  '/app.css': 'app.css',
  '/icon.svg': 'icon.svg',
}
const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
}
const COOKIE = 'meshmirror_dashboard'

function readAsset(name: string): Buffer {
  return readFileSync(new URL(`./assets/${name}`, import.meta.url))
}

/**
 * Serves the dashboard of a running peer: a read-only web page (mesh,
 * tables, problems, browse) updated live over server-sent events.
 */
export async function startDashboard(
  source: DashboardSource,
  options: DashboardOptions,
  logger: Logger = silentLogger,
): Promise<RunningDashboard> {
  const access = resolveAccess(options)
  const assets = new Map(Object.entries(ASSETS).map(([path, file]) => [path, readAsset(file)]))
  const state = new DashboardState(source, logger)
  await state.start()
  const clients = new Set<ServerResponse>()

  const server = createServer((req, res) => {
    handle(req, res).catch((error) => {
      logger.warn('dashboard request failed', { url: req.url, error: String(error) })
      if (!res.headersSent) send(res, 500, { error: 'internal error' })
      else res.end()
    })
  })

  const authorised = (req: IncomingMessage, url: URL): 'ok' | 'cookie' | 'no' => {
    if (access.token === undefined) {
      // No token on loopback: refuse pages asked for under another name (DNS rebinding).
      const host = (req.headers.host ?? '').replace(/:\d+$/, '')
      return isLoopback(host) ? 'ok' : 'no'
    }
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1]
    const cookie = (req.headers.cookie ?? '')
      .split(';')
      .map((c) => c.trim().split('='))
      .find(([k]) => k === COOKIE)?.[1]
    if (tokenMatches(access.token, bearer) || tokenMatches(access.token, cookie)) return 'ok'
    if (tokenMatches(access.token, url.searchParams.get('token') ?? undefined)) return 'cookie'
    return 'no'
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://dashboard')
    res.setHeader('X-Content-Type-Options', 'nosniff')
    res.setHeader('Referrer-Policy', 'no-referrer')
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD')
      return send(res, 405, { error: 'the dashboard is read-only' })
    }
    const auth = authorised(req, url)
    if (auth === 'no') {
      res.setHeader('WWW-Authenticate', 'Bearer realm="meshmirror dashboard"')
      res.writeHead(401, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' })
      res.end('401 Unauthorized: this dashboard needs its token (open the address the peer printed, with ?token=…)\n')
      return
    }
    if (auth === 'cookie') {
      // The token moves from the address into a cookie, and out of the address bar.
      res.writeHead(303, {
        'Set-Cookie': `${COOKIE}=${access.token}; HttpOnly; SameSite=Strict; Path=/`,
        Location: url.pathname,
        'Cache-Control': 'no-store',
      })
      res.end()
      return
    }
    const asset = assets.get(url.pathname)
    if (asset) {
      const ext = ASSETS[url.pathname]!.split('.').pop()!
      res.writeHead(200, {
        'Content-Type': TYPES[ext]!,
        'Cache-Control': 'no-cache',
        'Content-Security-Policy':
          "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
      })
      res.end(req.method === 'HEAD' ? undefined : asset)
      return
    }
    switch (url.pathname) {
      case '/api/overview':
        return send(res, 200, await state.overview())
      case '/api/problems':
        return send(res, 200, await state.problems(url.searchParams))
      case '/api/tables':
        return send(res, 200, source.tables())
      case '/api/search': {
        const table = url.searchParams.get('table') ?? ''
        if (!source.tables().some((t) => t.table === table))
          return send(res, 404, { error: `no mirrored table ${table}` })
        return send(res, 200, await source.search(table, url.searchParams.get('q') ?? '', 50))
      }
      case '/api/row': {
        const view = await state.row(url.searchParams.get('table') ?? '', url.searchParams.get('id') ?? '')
        return view ? send(res, 200, view) : send(res, 404, { error: 'no such row, document or entry' })
      }
      case '/api/events':
        return events(res)
      default:
        return send(res, 404, { error: 'not found' })
    }
  }

  function events(res: ServerResponse): void {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
    })
    res.write('retry: 2000\n\n')
    clients.add(res)
    res.on('close', () => clients.delete(res))
    void state.overview().then((o) => res.write(`event: overview\ndata: ${JSON.stringify(o)}\n\n`))
  }

  const broadcast = (event: string, data: unknown) => {
    const text = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`
    for (const c of clients) c.write(text)
  }
  state.onOverview((o) => broadcast('overview', o))
  state.onProblem((p) => broadcast('problem', p))
  const keepAlive = setInterval(() => {
    for (const c of clients) c.write(': keep-alive\n\n')
  }, 15_000)
  keepAlive.unref()

  await new Promise<void>((resolveListen, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      state.close()
      reject(
        error.code === 'EADDRINUSE'
          ? new MeshmirrorError(
              ErrorCode.ADDRESS_IN_USE,
              `The dashboard cannot listen on ${access.host}:${access.port}: the address is in use. Pick another port (or 0 for a free one).`,
              { cause: error, details: { host: access.host, port: access.port } },
            )
          : new MeshmirrorError(
              ErrorCode.INVALID_OPTIONS,
              `The dashboard cannot listen on ${access.host}:${access.port}: ${error.message}`,
              { cause: error, details: { host: access.host, port: access.port } },
            ),
      )
    })
    server.listen(access.port, access.host, () => resolveListen())
  })
  const port = (server.address() as AddressInfo).port
  const shownHost = access.host.includes(':') ? `[${access.host}]` : access.host
  let closing: Promise<void> | undefined
  const dashboard: RunningDashboard = {
    url: `http://${shownHost}:${port}/${access.token ? `?token=${access.token}` : ''}`,
    host: access.host,
    port,
    token: access.token,
    tokenGenerated: access.generated,
    close() {
      closing ??= new Promise<void>((done) => {
        clearInterval(keepAlive)
        state.close()
        for (const c of clients) c.end()
        server.close(() => done())
        server.closeAllConnections()
      })
      return closing
    },
    [Symbol.asyncDispose]() {
      return dashboard.close()
    },
  }
  return dashboard
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' })
  res.end(JSON.stringify(body))
}
