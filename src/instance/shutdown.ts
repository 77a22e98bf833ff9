const INSTALLED = Symbol.for('meshmirror.signalHandlers')

/**
 * Closes instances on SIGINT, SIGTERM and beforeExit, once per process.
 * After a signal, and once everything is closed, the signal is raised again
 * so the process ends the way it would have without us (unless the app
 * listens for it too, in which case ending is the app's call).
 */
export function installSignalHandlers(closeAll: () => Promise<void>): void {
  const g = globalThis as { [INSTALLED]?: boolean }
  if (g[INSTALLED]) return
  g[INSTALLED] = true
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    const onSignal = () => {
      process.off(signal, onSignal)
      void closeAll().finally(() => {
        if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
      })
    }
    process.on(signal, onSignal)
  }
  process.once('beforeExit', () => void closeAll())
}
