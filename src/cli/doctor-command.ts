import type { Command } from 'commander'
import { diagnoseMeshDir } from '../config/mesh-backend.js'
import { readSnapshot, snapshotWarnings } from '../config/status-snapshot.js'
import { ExitCode, formatBytes, makeOutput, reportError } from './output.js'

const EXIT_CODES = `
Exit codes:
  0  the directory can be opened now
  1  wrong input: it does not exist, is a file, cannot be read, or holds no mesh store
  2  an unexpected failure
  3  it is a mesh directory that cannot be opened now (in use, unreadable, another format)`

/** `meshmirror doctor --dir D [--json]`: lock state and owner, size, store version and a diagnosis. */
export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description('diagnose a mesh directory: lock state and owner (alive or not), size, store version')
    .requiredOption('--dir <dir>', 'the mesh persistence directory')
    .option('--json', 'print one JSON document on stdout')
    .addHelpText('after', EXIT_CODES)
    .action((opts: { dir: string; json?: boolean }) => {
      const output = makeOutput(opts.json === true)
      try {
        const d = diagnoseMeshDir(opts.dir)
        // What the peer last running on the directory reported: links it ran without encryption.
        const snapshot = readSnapshot(d.dir)
        const warnings = snapshot ? snapshotWarnings(snapshot) : []
        if (output.json) output.out(JSON.stringify({ ...d, warnings }, null, 2))
        else {
          const owner = d.info.owner
          const who = owner
            ? ` (owner pid ${owner.pid} on ${owner.hostname}, ${
                owner.alive === undefined ? 'another host' : owner.alive ? 'alive' : 'no longer running'
              })`
            : ''
          const lines = [
            `${d.dir}: ${d.ok ? 'ok' : 'attention needed'} (${d.status})`,
            `  lock       ${d.info.lock}, ${d.lockMode} mode${who}`,
            `  size       ${formatBytes(d.info.sizeBytes)}`,
            `  last use   ${d.info.lastUsedAt}`,
          ]
          if (d.storeVersion) lines.push(`  format     ${d.storeVersion}`)
          if (d.siteId) lines.push(`  site       ${d.siteId}`)
          for (const f of d.findings) lines.push(`  - ${f}`)
          for (const w of warnings) lines.push(`  warning: ${w}`)
          output.out(lines.join('\n'))
        }
        if (!d.ok) process.exitCode = ExitCode.NEEDS_ATTENTION
      } catch (error) {
        process.exitCode = reportError(output, error)
      }
    })
}
