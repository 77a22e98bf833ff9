import { watch } from 'node:fs'
import { relative } from 'node:path'
import type { Command } from 'commander'
import { generate } from '../codegen/generate.js'
import { makeOutput, type Output, reportError } from './output.js'

interface GenerateFlags {
  check?: boolean
  watch?: boolean
  registry?: string
  runtime?: string
  json?: boolean
}

async function runOnce(paths: string[], flags: GenerateFlags, output: Output): Promise<number> {
  try {
    const result = await generate({
      paths,
      check: flags.check === true,
      ...(flags.registry ? { registry: flags.registry } : {}),
      ...(flags.runtime ? { runtime: flags.runtime } : {}),
    })
    const rel = (f: string) => relative(process.cwd(), f)
    if (output.json) output.out(JSON.stringify(result, null, 2))
    else if (flags.check) {
      output.out(
        result.stale.length === 0
          ? `${result.models.length} models, generated files up to date`
          : `stale or missing generated files (run meshmirror generate):\n${result.stale.map((f) => `  ${rel(f)}`).join('\n')}`,
      )
    } else {
      const lines = result.written.map((f) => `wrote ${rel(f)}`)
      lines.push(
        `${result.models.length} models, ${result.written.length} files written, ${result.unchanged.length} unchanged`,
      )
      output.out(lines.join('\n'))
    }
    return flags.check && result.stale.length > 0 ? 1 : 0
  } catch (error) {
    return reportError(output, error)
  }
}

export function registerGenerateCommand(program: Command): void {
  program
    .command('generate')
    .description('write a sync adapter next to each @SyncModel class, and a registry of them all')
    .argument('[paths...]', 'model files or directories', ['.'])
    .option('--check', 'exit 1 when a generated file is missing or stale; write nothing')
    .option('--watch', 'regenerate when a model file changes')
    .option('--registry <file>', 'where the registry goes (default: sync-adapters.g.ts in the first path)')
    .option('--runtime <module>', 'module generated code imports meshmirror from', 'meshmirror')
    .option('--json', 'print one JSON document')
    .action(async (paths: string[], flags: GenerateFlags) => {
      const output = makeOutput(flags.json === true)
      process.exitCode = await runOnce(paths, flags, output)
      if (!flags.watch) return
      let timer: NodeJS.Timeout | undefined
      for (const p of paths) {
        watch(p, { recursive: true }, (_event, file) => {
          if (!file || file.toString().endsWith('.g.ts')) return
          clearTimeout(timer)
          timer = setTimeout(() => void runOnce(paths, flags, output), 100)
        })
      }
      output.err('watching for changes (Ctrl-C to stop)')
    })
}
