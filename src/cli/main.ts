#!/usr/bin/env node
import { readFileSync } from 'node:fs'
import { Command } from 'commander'
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

const program = new Command()
program
  .name('meshmirror')
  .description('Mirror an application’s local SQLite database into a peer-to-peer replicated document store, and back.')
  .version(version(), '-v, --version')
  .showHelpAfterError()

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

await program.parseAsync(process.argv)
