import { readFileSync } from 'node:fs'

let cached: string | undefined

/** This package's version, read once from its package.json. */
export function packageVersion(): string {
  if (cached === undefined) {
    try {
      const url = new URL('../../package.json', import.meta.url)
      cached = (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version
    } catch {
      cached = 'unknown'
    }
  }
  return cached
}
