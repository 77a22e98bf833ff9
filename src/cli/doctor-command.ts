import type { Command } from 'commander'
import { diagnose } from '../instance/doctor.js'
import { ExitCode, formatBytes, makeOutput, reportError } from './output.js'

export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description('diagnose a mesh directory: lock state and owner, size, store version')
    .requiredOption('--dir <dir>', 'the mesh persistence directory')
    .option('--json', 'print one JSON document')
    .action((opts: { dir: string; json?: boolean }) => {
      const output = makeOutput(opts.json === true)
      try {
        const d = diagnose(opts.dir)
        if (output.json) output.out(JSON.stringify(d, null, 2))
        else {
          const lines = [`${d.dir}: ${d.ok ? 'ok' : 'attention needed'}`]
          if (d.info) {
            lines.push(`  lock       ${d.info.lock}${d.info.owner ? ` (owner pid ${d.info.owner.pid})` : ''}`)
            lines.push(`  size       ${formatBytes(d.info.sizeBytes)}`)
            lines.push(`  last use   ${d.info.lastUsedAt}`)
          }
          if (d.storeVersion) lines.push(`  format     ${d.storeVersion}`)
          for (const f of d.findings) lines.push(`  - ${f}`)
          output.out(lines.join('\n'))
        }
        if (!d.ok) process.exitCode = d.isMesh ? ExitCode.NEEDS_ATTENTION : ExitCode.ERROR
      } catch (error) {
        process.exitCode = reportError(output, error)
      }
    })
}
