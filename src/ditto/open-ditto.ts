import { readFileSync, statSync } from 'node:fs'
import { hostname } from 'node:os'
import { isAbsolute, join } from 'node:path'
import type { Ditto } from '@dittolive/ditto'
import { ErrorCode, LockHeldError, type LockHolder, MeshmirrorError, ValidationError } from '../errors.js'
import type { Logger } from '../logger.js'
import { backoffMs } from '../util/backoff.js'
import { delay } from '../util/delay.js'
import type { DittoLogLevel, DittoMeshOptions, DittoTransports } from './options.js'
import { backendError, isDittoError, loadSdk, type Sdk } from './sdk.js'

/** The file in which Ditto holds its directory lock (a kernel `flock`) and writes the holder's pid. */
export const DITTO_LOCK_FILE = '__ditto_lock_file'
const LOCKED = 'store/persistence-directory-locked'

/**
 * Opens Ditto in an absolute directory without blocking the event loop for
 * long: Ditto's own lock retry (5 × 200 ms, synchronous) is cut to one try of
 * 1 ms through `DITTO_FILELOCK_RETRY_MAXIMUM/DELAY`, and a held directory is
 * waited for here, asynchronously, up to `lockTimeoutMs`. Then `LOCK_HELD`
 * names the holder from the pid Ditto wrote into `__ditto_lock_file`.
 */
export async function openDitto(dir: string, options: DittoMeshOptions, logger: Logger): Promise<Ditto> {
  if (!isAbsolute(dir)) {
    // Ditto resolves relative paths under ~/.local/share/ditto, not the working directory.
    throw new ValidationError(ErrorCode.INVALID_OPTIONS, `The Ditto directory must be absolute, got ${dir}.`)
  }
  const sdk = await loadSdk(options.diskLogs ?? true)
  configureLogging(sdk, options.logLevel ?? 'off')
  const timeoutMs = options.lockTimeoutMs ?? 10_000
  const started = performance.now()
  for (let attempt = 0; ; attempt++) {
    try {
      return await openOnce(sdk, dir, options)
    } catch (error) {
      if (!isDittoError(error, LOCKED)) throw backendError(`open ${dir}`, error)
      const waited = performance.now() - started
      const holder = lockHolder(dir)
      if (waited >= timeoutMs) throw new LockHeldError(dir, holder, waited)
      logger.debug('Ditto directory held; waiting', { dir, holder: holder?.pid, waitedMs: Math.round(waited) })
      await delay(Math.min(backoffMs(attempt, { initialMs: 5, maxMs: 100 }), timeoutMs - waited), options.signal)
    }
  }
}

async function openOnce(sdk: Sdk, dir: string, options: DittoMeshOptions): Promise<Ditto> {
  const saved = [process.env.DITTO_FILELOCK_RETRY_MAXIMUM, process.env.DITTO_FILELOCK_RETRY_DELAY]
  process.env.DITTO_FILELOCK_RETRY_MAXIMUM = '1'
  process.env.DITTO_FILELOCK_RETRY_DELAY = '1'
  try {
    const connect = { mode: 'smallPeersOnly' as const, privateKey: options.sharedKey ?? null }
    const config = new sdk.DittoConfig(options.databaseId ?? sdk.DittoConfig.DEFAULT_DATABASE_ID, connect, dir)
    return await sdk.Ditto.open(config)
  } finally {
    restoreEnv('DITTO_FILELOCK_RETRY_MAXIMUM', saved[0])
    restoreEnv('DITTO_FILELOCK_RETRY_DELAY', saved[1])
  }
}

function restoreEnv(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name]
  else process.env[name] = value
}

/** Who holds a Ditto directory, from the pid in its lock file. */
export function lockHolder(dir: string): LockHolder | undefined {
  const file = join(dir, DITTO_LOCK_FILE)
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8').trim(), 10)
    if (!Number.isSafeInteger(pid) || pid <= 0) return undefined
    return {
      pid,
      hostname: hostname(),
      command: commandOf(pid) ?? 'a Ditto process',
      acquiredAt: statSync(file).mtime.toISOString(),
      alive: isAlive(pid),
    }
  } catch {
    return undefined
  }
}

function commandOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ') || undefined
  } catch {
    return undefined
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

let appliedLevel: DittoLogLevel | undefined

/** Ditto logs to the console by default; meshmirror keeps it quiet unless asked. Process-wide. */
export function configureLogging(sdk: Sdk, level: DittoLogLevel): void {
  if (appliedLevel === level) return
  appliedLevel = level
  // The level first: enabling or disabling applies it at once.
  sdk.Logger.minimumLogLevel = level === 'off' ? 'Error' : level
  sdk.Logger.enabled = level !== 'off'
}

/** Applies transport settings (before sync starts). */
export function applyTransports(ditto: Ditto, t: DittoTransports = {}): void {
  ditto.updateTransportConfig((config) => {
    config.peerToPeer.lan.isEnabled = t.lan ?? true
    config.peerToPeer.lan.isMdnsEnabled = t.lan ?? true
    config.peerToPeer.lan.isMulticastEnabled = t.lan ?? true
    config.peerToPeer.bluetoothLE.isEnabled = t.bluetooth ?? false
    if (t.tcpListen) {
      config.listen.tcp.isEnabled = true
      config.listen.tcp.interfaceIP = t.tcpListen.interfaceIP ?? '0.0.0.0'
      config.listen.tcp.port = t.tcpListen.port
    }
    if (t.tcpConnect) config.connect.tcpServers = [...t.tcpConnect]
    if (t.websocketConnect) config.connect.websocketURLs = [...t.websocketConnect]
  })
}

/** Sets the offline license token when there is one (option, else `DITTO_LICENSE_TOKEN`). */
export function activate(ditto: Ditto, token: string | undefined): boolean {
  if (!token) return false
  try {
    ditto.setOfflineOnlyLicenseToken(token)
    return true
  } catch (error) {
    throw new MeshmirrorError(
      ErrorCode.LICENSE_REQUIRED,
      `Ditto refused the license token: ${(error as Error).message}`,
      {
        cause: error,
      },
    )
  }
}
