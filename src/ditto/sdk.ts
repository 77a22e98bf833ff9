import type * as DittoSdk from '@dittolive/ditto'
import { ErrorCode, MeshmirrorError } from '../errors.js'

export type Sdk = typeof DittoSdk

let loaded: Promise<Sdk> | undefined

/**
 * Loads `@dittolive/ditto` (an optional peer dependency) on first use.
 * `diskLogs: false` turns off Ditto's always-on debug log files; Ditto reads
 * that setting once, when it loads, so it applies to the whole process.
 */
export function loadSdk(diskLogs = true): Promise<Sdk> {
  if (!loaded && !diskLogs) process.env.DITTO_DISABLE_ALWAYS_DEBUG_ON_DISK_LOGS ??= '1'
  loaded ??= import('@dittolive/ditto').then(
    (m) => ((m as unknown as { default?: Sdk }).default ?? m) as Sdk,
    (error: unknown) => {
      loaded = undefined
      throw new MeshmirrorError(
        ErrorCode.DEPENDENCY_MISSING,
        'meshmirror/ditto needs the Ditto SDK: run `npm install @dittolive/ditto@^5`.',
        { cause: error },
      )
    },
  )
  return loaded
}

/** True when `error` is a Ditto SDK error with `code`. */
export function isDittoError(error: unknown, code: string): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === code
}

/** Wraps a Ditto SDK failure as `BACKEND_ERROR`, keeping its code and the cause. */
export function backendError(what: string, error: unknown): MeshmirrorError {
  if (error instanceof MeshmirrorError) return error
  const backendCode = (error as { code?: unknown })?.code
  const message = (error as Error)?.message ?? String(error)
  return new MeshmirrorError(ErrorCode.BACKEND_ERROR, `Ditto failed to ${what}: ${message}`, {
    cause: error,
    details: { backendCode: typeof backendCode === 'string' ? backendCode : undefined },
  })
}
