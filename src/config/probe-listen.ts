import { createServer } from 'node:net'
import { ErrorCode, MeshmirrorError } from '../errors.js'
import { configError } from './load-config.js'

/**
 * Checks that the address can be listened on, before anything is written:
 * `ADDRESS_IN_USE` when another process listens there, `INVALID_CONFIG`
 * for a host that is not this machine's (or not a host at all) or a port it may not use.
 */
export function probeListen(listen: { host: string; port: number }, source = 'config', key = 'listen'): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE') reject(addressInUse(listen, key, error))
      else if (error.code === 'EACCES') {
        reject(configError(source, `${key}.port`, `port ${listen.port} needs privileges; use one above 1023.`, error))
      } else if (error.code === 'EADDRNOTAVAIL' || error.code === 'ENOTFOUND' || error.code === 'EAI_AGAIN') {
        reject(configError(source, `${key}.host`, `${listen.host} is not an address of this machine.`, error))
      } else {
        // Anything else the system refuses (a host name it cannot even look up): still the config's doing.
        const why = error.code ?? error.message
        reject(configError(source, `${key}.host`, `cannot listen on ${JSON.stringify(listen.host)} (${why}).`, error))
      }
    })
    server.listen(listen.port, listen.host, () => server.close(() => resolve()))
  })
}

function addressInUse(listen: { host: string; port: number }, key: string, cause: unknown): MeshmirrorError {
  return new MeshmirrorError(
    ErrorCode.ADDRESS_IN_USE,
    `${key}: ${listen.host}:${listen.port} is in use by another process. Stop it, or choose another "${key}.port" (0 picks a free one).`,
    { cause, details: { key: `${key}.port`, ...listen } },
  )
}
