import type { Command } from 'commander'
import { cleanupMeshDirs, listMeshDirs, resolveBuiltinRoot } from '../engine/default-instance.js'
import { ErrorCode, ValidationError } from '../errors.js'
import type { MeshDirInfo } from '../instance/dirs.js'
import { ExitCode, formatBytes, makeOutput, type Output, reportError } from './output.js'

const EXIT_CODES = `
Exit codes:
  0  success
  1  wrong input (the root does not exist, is a file, cannot be read, is itself a mesh directory; a bad duration)
  2  an unexpected failure
  3  cleanup: some directories could not be removed (listed under "failed")`

/** Parses `90s`, `30m`, `24h`, `7d`, `250ms` or a number of milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim())
  if (!m) {
    throw new ValidationError(
      ErrorCode.INVALID_OPTIONS,
      `Invalid duration ${JSON.stringify(text)}: use e.g. 90s, 30m, 24h or 7d.`,
    )
  }
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 'ms') as 'ms']
  return Number(m[1]) * unit
}

function row(d: MeshDirInfo): string {
  const owner = d.owner
    ? ` pid ${d.owner.pid}${d.owner.alive === false ? ' (gone)' : d.owner.alive === undefined ? ` (${d.owner.hostname})` : ''}`
    : ''
  const migrated = d.migrated ? ' migrated' : ''
  return `${d.name.padEnd(44)} ${formatBytes(d.sizeBytes).padStart(10)}  ${d.lastUsedAt}  ${d.lock}${owner}${migrated}`
}

function run(output: Output, fn: () => number | undefined): void {
  try {
    const code = fn()
    if (code) process.exitCode = code
  } catch (error) {
    process.exitCode = reportError(output, error)
  }
}

/** `meshmirror dirs list|size|cleanup --root R`. */
export function registerDirsCommand(program: Command): void {
  const dirs = program
    .command('dirs')
    .description('list, measure and clean up the mesh directories under a root')
    .addHelpText('after', EXIT_CODES)

  dirs
    .command('list')
    .description('mesh directories under a root: size, last use, lock state and owner')
    .requiredOption('--root <dir>', 'the directory that holds mesh directories')
    .option('--json', 'print one JSON document on stdout')
    .addHelpText('after', EXIT_CODES)
    .action((opts: { root: string; json?: boolean }) => {
      const output = makeOutput(opts.json === true)
      run(output, () => {
        const root = resolveBuiltinRoot(opts.root)
        const list = listMeshDirs(root)
        if (output.json) output.out(JSON.stringify({ root, dirs: list }, null, 2))
        else output.out(list.length === 0 ? 'no mesh directories' : list.map(row).join('\n'))
        return undefined
      })
    })

  dirs
    .command('size')
    .description('total size of the mesh directories under a root')
    .requiredOption('--root <dir>', 'the directory that holds mesh directories')
    .option('--json', 'print one JSON document on stdout')
    .addHelpText('after', EXIT_CODES)
    .action((opts: { root: string; json?: boolean }) => {
      const output = makeOutput(opts.json === true)
      run(output, () => {
        const root = resolveBuiltinRoot(opts.root)
        const list = listMeshDirs(root)
        const totalBytes = list.reduce((n, d) => n + d.sizeBytes, 0)
        if (output.json) {
          const dirs = list.map((d) => ({ dir: d.dir, sizeBytes: d.sizeBytes }))
          output.out(JSON.stringify({ root, directories: list.length, totalBytes, dirs }, null, 2))
        } else output.out(`${list.length} mesh directories, ${formatBytes(totalBytes)}`)
        return undefined
      })
    })

  dirs
    .command('cleanup')
    .description('remove mesh directories unused for a while; never a locked one')
    .requiredOption('--root <dir>', 'the directory that holds mesh directories')
    .option('--older-than <duration>', 'minimum time since last use (e.g. 24h, 7d)', '24h')
    .option('--keep <dir...>', 'directories never to remove')
    .option('--dry-run', 'report what would be removed, remove nothing')
    .option('--json', 'print one JSON document on stdout')
    .addHelpText('after', EXIT_CODES)
    .action((opts: { root: string; olderThan: string; keep?: string[]; dryRun?: boolean; json?: boolean }) => {
      const output = makeOutput(opts.json === true)
      run(output, () => {
        const report = cleanupMeshDirs(opts.root, {
          olderThanMs: parseDuration(opts.olderThan),
          dryRun: opts.dryRun === true,
          keep: opts.keep ?? [],
        })
        if (output.json) output.out(JSON.stringify(report, null, 2))
        else {
          const verb = report.dryRun ? 'would remove' : 'removed'
          const lines = [
            ...report.removed.map((d) => `${verb} ${d.dir} (${formatBytes(d.sizeBytes)})`),
            ...report.kept.map((k) => `kept ${k.dir}: ${k.reason}`),
            ...report.failed.map((f) => `FAILED ${f.dir}: ${f.error}`),
            `${verb} ${report.removed.length} directories, ${formatBytes(report.freedBytes)}`,
          ]
          output.out(lines.join('\n'))
        }
        return report.failed.length > 0 ? ExitCode.NEEDS_ATTENTION : undefined
      })
    })
}
