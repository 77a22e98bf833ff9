import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import type { Runtime } from './till.js'

const ROOT = resolve(import.meta.dirname, '..')

/** The newest modification time of a file under `dir`. */
function newest(dir: string): number {
  let max = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    max = Math.max(max, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs)
  }
  return max
}

/**
 * How the harness runs `meshmirror peer`: the built package (`dist/`, rebuilt
 * first when `src/` is newer), which starts in about half a second, or the
 * sources through tsx, which take a few seconds to start. Peers start after
 * every kill, so their start time shapes the run.
 */
export function prepareRuntime(fromSource: boolean, say: (line: string) => void): Runtime {
  const app = ['--import', 'tsx', join(ROOT, 'chaos', 'app.ts')]
  if (fromSource) return { root: ROOT, cli: ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts')], app }
  const main = join(ROOT, 'dist', 'cli', 'main.js')
  if (!existsSync(main) || newest(join(ROOT, 'src')) > statSync(main).mtimeMs) {
    say('building dist/ (the sources are newer)')
    execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] })
  }
  return { root: ROOT, cli: [main], app }
}
