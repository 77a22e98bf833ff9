import type { Command } from 'commander'
import { loadConfig } from '../config/load-config.js'
import { IDLE_SNAPSHOT_INTERVALS, SnapshotChanges } from '../config/peer-snapshot.js'
import { openPeer, type RunningPeer } from '../config/start-peer.js'
import { parseDashboardAddress } from '../dashboard/access.js'
import type { Logger } from '../logger.js'
import { redactUrl } from '../postgres/postgres-repository.js'
import { ExitCode, makeOutput, type Output, reportError } from './output.js'
import { attachDisplay } from './peer-display.js'

const HELP = `
Examples:
  $ meshmirror init --database ./pos.db          # writes meshmirror.config.json
  $ meshmirror peer --config meshmirror.config.json
  $ meshmirror peer --config meshmirror.config.json --json | tee peer.log
  $ meshmirror peer --dashboard 8080              # the dashboard on http://127.0.0.1:8080/
  $ meshmirror peer --dashboard 0.0.0.0:8080      # on every interface: a token is required (printed)

Stops cleanly on Ctrl-C or SIGTERM (sync flushed, peers disconnected, the
directory lock released last); a second Ctrl-C stops at once.

Exit codes:
  0    stopped cleanly
  1    a meshmirror error: bad config (INVALID_CONFIG), directory in use (LOCK_HELD),
       address in use (ADDRESS_IN_USE), a table that cannot be mirrored…
  2    an unexpected failure
  130  stopped by a second Ctrl-C, without a clean close`

/** Sends the runtime's diagnostics to stderr as plain lines (or JSON lines), warnings and errors only. */
function stderrLogger(json: boolean): Logger {
  const line = (level: string, message: string, fields?: Record<string, unknown>) =>
    process.stderr.write(
      json
        ? `${JSON.stringify({ event: 'log', level, message, ...fields })}\n`
        : `${level}: ${message}${fields && Object.keys(fields).length ? ` ${JSON.stringify(fields)}` : ''}\n`,
    )
  return {
    debug: () => undefined,
    info: () => undefined,
    warn: (m, f) => line('warn', m, f),
    error: (m, f) => line('error', m, f),
  }
}

function emitJson(event: string, payload: object): void {
  process.stdout.write(`${JSON.stringify({ event, at: new Date().toISOString(), ...payload })}\n`)
}

function attachJson(peer: RunningPeer, statusIntervalMs = 1000): void {
  // A status line when what the snapshot shows changed, and every ten intervals while nothing does.
  const changes = new SnapshotChanges(statusIntervalMs * IDLE_SNAPSHOT_INTERVALS)
  peer.on('phase', (p) => emitJson('phase', p))
  peer.on('progress', (p) => emitJson('progress', p))
  peer.on('peer', (p) => emitJson('peer', p))
  peer.on('rejected', (r) => emitJson('rejected', { ...r, error: undefined }))
  peer.on('parked', (p) => emitJson('parked', p))
  peer.on('drift', (d) =>
    emitJson('drift', { count: d.documents.length, repaired: d.repaired, documents: d.documents.slice(0, 20) }),
  )
  peer.on('conflict', (c) => emitJson('conflict', c))
  peer.on('error', (e) => emitJson('error', { phase: e.phase, model: e.model, message: String(e.error) }))
  peer.on('snapshot', (s) => {
    if (changes.take(s, Date.now())) emitJson('status', s)
  })
  peer.on('dashboard', (d) => emitJson('dashboard', d))
}

/** Runs until a signal; resolves with the exit code. */
async function run(configFile: string, output: Output, dashboardAt: string | undefined): Promise<number> {
  const config = await loadConfig(configFile)
  const dashboard =
    dashboardAt === undefined ? undefined : { ...config.dashboard, ...parseDashboardAddress(dashboardAt) }
  const peer = await openPeer(config, { logger: stderrLogger(output.json), ...(dashboard ? { dashboard } : {}) })
  let detach: (() => void) | undefined
  if (output.json) attachJson(peer, config.statusIntervalMs)
  else {
    const mesh = config.mesh.backend === 'ditto' ? 'Ditto mesh' : 'mesh'
    output.out(`meshmirror: ${redactUrl(config.database)} ⇄ ${mesh} ${peer.meshDir} (site ${peer.siteId})`)
    output.out(`mirroring ${peer.models.adapters.map((a) => a.collection).join(', ')}; Ctrl-C stops`)
    detach = attachDisplay(peer, process.stdout)
    peer.on('dashboard', (d) => {
      output.out(`${process.stdout.isTTY ? '\r\x1b[2K' : ''}dashboard: ${d.url}`)
      if (d.tokenGenerated) {
        output.out(
          '  (a token was generated: the address carries it; set dashboard.token or MESHMIRROR_DASHBOARD_TOKEN to choose it)',
        )
      }
    })
  }
  // Runs until stopped, even with nothing else keeping the process up (no listener, no peers).
  const keepAlive = setInterval(() => undefined, 1 << 30)
  let stopping = false
  const stopped = new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        output.err('stopping at once')
        process.exit(130)
      }
      stopping = true
      if (output.json) emitJson('stopping', { signal })
      else output.err(`\n${signal}: stopping (again to force)`)
      const done = (code: number) => {
        clearInterval(keepAlive)
        detach?.()
        resolve(code)
      }
      peer.close().then(
        () => {
          if (output.json) emitJson('stopped', {})
          else output.err('stopped')
          done(ExitCode.OK)
        },
        (error) => done(reportError(output, error)),
      )
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  })
  try {
    await peer.start()
  } catch (error) {
    // Stopped by a signal while starting: the close reports how it went.
    if (stopping) return stopped
    clearInterval(keepAlive)
    detach?.()
    throw error
  }
  // A signal during startup: the close in progress reports how it went.
  if (stopping) return stopped
  if (output.json) {
    emitJson('live', {
      siteId: peer.siteId,
      port: peer.port ?? null,
      database: redactUrl(config.database),
      meshDir: peer.meshDir,
    })
  } else if (config.listen) {
    output.out(`${process.stdout.isTTY ? '\r\x1b[2K' : ''}listening on ${config.listen.host}:${peer.port}`)
  }
  return stopped
}

/** `meshmirror peer --config F [--json]`: mirrors a database into the mesh until stopped. */
export function registerPeerCommand(program: Command): void {
  program
    .command('peer')
    .description('mirror the database a config names into the mesh, and back, until stopped')
    .option('-c, --config <file>', 'the config file (JSON, .mjs, or .ts through tsx)', 'meshmirror.config.json')
    .option('--json', 'print one JSON event per line on stdout (phase, progress, peer, conflict, status, error)')
    .option(
      '--dashboard <[host:]port>',
      'serve the dashboard web page on this address (loopback by default; any other host requires a token)',
    )
    .addHelpText('after', HELP)
    .action(async (opts: { config: string; json?: boolean; dashboard?: string }) => {
      const output = makeOutput(opts.json === true)
      try {
        process.exitCode = await run(opts.config, output, opts.dashboard)
      } catch (error) {
        process.exitCode = reportError(output, error)
      }
      // Replication timers and sockets are closed; anything left must not keep the process up.
      process.exit()
    })
}
