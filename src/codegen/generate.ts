import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import type * as TS from 'typescript'
import { ErrorCode, MeshmirrorError } from '../errors.js'
import { adapterFileFor, emitAdapter, emitRegistry, GENERATED_HEADER } from './emit.js'
import { type ModelProblem, parseModels } from './parse.js'

export interface GenerateOptions {
  /** Files or directories to scan for `@SyncModel` classes. */
  paths: readonly string[]
  /** Where the registry file goes. Default: `sync-adapters.g.ts` in the first directory given (or the first file's). */
  registry?: string
  /** Module generated code imports meshmirror from. Default `meshmirror`. */
  runtime?: string
  /** Compare only: report missing or stale files, write nothing. */
  check?: boolean
}

export interface GenerateResult {
  models: { name: string; collection: string; file: string }[]
  /** Files written (or, with `check`, that would be). */
  written: string[]
  /** With `check`: files missing or different from what would be generated. */
  stale: string[]
  unchanged: string[]
}

/** Model sources: `.ts` files that mention `@SyncModel`, skipping generated, test and declaration files. */
export function findModelFiles(paths: readonly string[]): string[] {
  const out: string[] = []
  const consider = (file: string) => {
    if (!/\.(m|c)?tsx?$/.test(file) || /\.g\.ts$|\.d\.ts$|\.test\.ts$/.test(file)) return
    if (readFileSync(file, 'utf8').includes('@SyncModel')) out.push(resolve(file))
  }
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.name === 'node_modules' || e.name.startsWith('.')) continue
      const p = join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else consider(p)
    }
  }
  for (const p of paths) {
    if (!existsSync(p))
      throw new MeshmirrorError(ErrorCode.INVALID_OPTIONS, `${p} does not exist.`, { details: { path: p } })
    if (statSync(p).isDirectory()) walk(p)
    else consider(p)
  }
  return [...new Set(out)].sort()
}

/** The error for model problems: every problem, each with file, line and field. */
export class ModelSourceError extends MeshmirrorError {
  constructor(readonly problems: readonly ModelProblem[]) {
    super(
      ErrorCode.INVALID_MODEL,
      `Cannot generate adapters; nothing was written:\n${problems
        .map((p) => `  ${p.file}:${p.line}${p.model ? ` ${p.model}${p.field ? `.${p.field}` : ''}` : ''}: ${p.message}`)
        .join('\n')}`,
      { details: { problems } },
    )
    this.name = 'ModelSourceError'
  }
}

/**
 * Generates an adapter next to each model and one registry file listing
 * them. Output is deterministic; files whose content would not change are
 * not touched. Nothing is written when any model has a problem.
 */
export async function generate(options: GenerateOptions): Promise<GenerateResult> {
  const ts = await loadTypeScript()
  const files = findModelFiles(options.paths)
  const { models, problems } = parseModels(ts, files)
  // Each adapter file is named after its model's file: one model per file.
  const firstInFile = new Map<string, (typeof models)[number]>()
  for (const m of models) {
    const first = firstInFile.get(m.file)
    if (!first) firstInFile.set(m.file, m)
    else {
      problems.push({
        file: m.file,
        line: m.line,
        model: m.spec.name,
        message: `a second @SyncModel in this file (after ${first.spec.name}); move it to a file of its own`,
      })
    }
  }
  if (problems.length > 0) throw new ModelSourceError(problems)
  const runtime = options.runtime ?? 'meshmirror'
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point
  if (!/^[^\s\u0000-\u001f]+$/.test(runtime)) {
    throw new MeshmirrorError(
      ErrorCode.INVALID_OPTIONS,
      `--runtime ${JSON.stringify(runtime)} is not a module name: no spaces or control characters.`,
      { details: { runtime } },
    )
  }
  const first = options.paths[0] ?? '.'
  const registry = resolve(
    options.registry ??
      join(existsSync(first) && statSync(first).isDirectory() ? first : dirname(first), 'sync-adapters.g.ts'),
  )
  const outputs = new Map<string, string>()
  const entries = models.map((m) => ({ spec: m.spec, adapterFile: adapterFileFor(m.file), file: m.file }))
  // The registry first: its path is the one given, the likeliest not to be writable.
  outputs.set(registry, emitRegistry(registry, entries, { runtime }))
  for (const e of entries) outputs.set(e.adapterFile, emitAdapter(e.spec, e.file, { runtime }))

  const result: GenerateResult = {
    models: entries.map((e) => ({ name: e.spec.name, collection: e.spec.collection, file: e.file })),
    written: [],
    stale: [],
    unchanged: [],
  }
  for (const [file, text] of outputs) {
    const current = readExisting(file)
    if (current === text) {
      result.unchanged.push(file)
      continue
    }
    if (current !== undefined && !current.startsWith(GENERATED_HEADER)) {
      throw new MeshmirrorError(
        ErrorCode.INVALID_OPTIONS,
        `${file} exists and was not generated by meshmirror; move it away or choose another --registry.`,
        { details: { file } },
      )
    }
    if (options.check) result.stale.push(file)
    else {
      try {
        writeFileSync(file, text)
      } catch (error) {
        throw cannotUse(file, 'write', error)
      }
      result.written.push(file)
    }
  }
  return result
}

function cannotUse(file: string, what: 'read' | 'write', cause: unknown): MeshmirrorError {
  const why = (cause as NodeJS.ErrnoException).code ?? (cause as Error).message
  return new MeshmirrorError(
    ErrorCode.INVALID_OPTIONS,
    `Cannot ${what} ${file} (${why}); choose another --registry, or make it writable.`,
    { cause, details: { file } },
  )
}

/** The file's text, or undefined when there is none. */
function readExisting(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw cannotUse(file, 'read', error)
  }
}

async function loadTypeScript(): Promise<typeof TS> {
  try {
    const mod = (await import('typescript')) as unknown as { default?: typeof TS } & typeof TS
    return mod.default ?? mod
  } catch (cause) {
    throw new MeshmirrorError(
      ErrorCode.INVALID_OPTIONS,
      'meshmirror generate needs the typescript package (5.x or 6.x): npm install -D typescript',
      { cause },
    )
  }
}
