import { readFileSync } from 'node:fs'
import { Command } from 'commander'
import { ErrorCode } from '../errors.js'
import { registerConflictsCommand } from './conflicts-command.js'
import { registerDemoCommand } from './demo-command.js'
import { registerDirsCommand } from './dirs-command.js'
import { registerDoctorCommand } from './doctor-command.js'
import { registerGenerateCommand } from './generate-command.js'
import { registerInitCommand } from './init-command.js'
import { registerInspectCommand } from './inspect-command.js'
import { registerParkedCommand } from './parked-command.js'
import { registerPeerCommand } from './peer-command.js'
import { registerStatusCommand } from './status-command.js'

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

/**
 * The `meshmirror` program. A usage error (an unknown command or option, a
 * missing or malformed value) is reported like every other error, with
 * code `INVALID_OPTIONS` (one JSON document on stdout with `--json`), and
 * exits 1.
 */
export function createProgram(argv: readonly string[] = process.argv): Command {
  const json = argv.includes('--json')
  const program = new Command()
  program
    .name('meshmirror')
    .description(
      'Mirror an application’s local SQLite database into a peer-to-peer replicated document store, and back.',
    )
    .version(version(), '-v, --version')
    .showHelpAfterError()
    .configureOutput({
      outputError: (text, write) => {
        const message = text.replace(/^error: /, '').trim()
        if (json) {
          process.stdout.write(
            `${JSON.stringify({ error: { code: ErrorCode.INVALID_OPTIONS, message, details: {} } })}\n`,
          )
        } else write(`error [${ErrorCode.INVALID_OPTIONS}]: ${message}\n`)
      },
    })

  registerInspectCommand(program)
  registerDirsCommand(program)
  registerDoctorCommand(program)
  registerGenerateCommand(program)
  registerInitCommand(program)
  registerPeerCommand(program)
  registerStatusCommand(program)
  registerParkedCommand(program)
  registerConflictsCommand(program)
  registerDemoCommand(program)
  return program
}
