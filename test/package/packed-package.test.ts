import { execFile } from 'node:child_process'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { promisify } from 'node:util'
import ts from 'typescript'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type DocExample, docExamples, FRAGMENT_TOLERATED, withImports } from './doc-examples.js'

// The package as a new user gets it: `npm pack`, installed into an empty
// project, then the README's and docs' examples type-checked and run there,
// and generated adapters compiled against it. A doc that drifts from the
// code, or a name the docs use that the package does not export, fails here.

const run = promisify(execFile)
const ROOT = resolve(import.meta.dirname, '../..')
const examples = docExamples(ROOT)
let project = ''

/** A dependency of the temporary project, linked to the repository's installed copy (no download, no build). */
const linked = (name: string) => `file:${realpathSync(join(ROOT, 'node_modules', name))}`

beforeAll(async () => {
  project = mkdtempSync(join(tmpdir(), 'mm-packed-'))
  // `prepack` builds dist/ first, so the tarball is what `npm publish` would upload.
  const packed = await run('npm', ['pack', '--pack-destination', project, '--silent'], { cwd: ROOT })
  const tarball = packed.stdout.trim().split('\n').pop() ?? ''
  expect(tarball).toMatch(/^meshmirror-.*\.tgz$/)
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify({
      name: 'new-user',
      private: true,
      type: 'module',
      dependencies: {
        // The native module is compiled once, in the repository; the rest comes from the npm cache.
        'better-sqlite3': linked('better-sqlite3'),
        typescript: linked('typescript'),
        '@types/node': linked('@types/node'),
        vitest: linked('vitest'),
      },
    }),
  )
  await run(
    'npm',
    ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error', `./${tarball}`],
    { cwd: project },
  )
}, 120_000)

afterAll(() => {
  if (project) rmSync(project, { recursive: true, force: true })
})

interface ExportInfo {
  from: string
  value: boolean
}

/** Every name the package's entry points export, read from their .d.ts as a user's compiler sees them. */
function packageExports(): Map<string, ExportInfo> {
  const entries = { meshmirror: 'index', 'meshmirror/testing': 'testing', 'meshmirror/ditto': 'ditto/index' }
  const files = Object.values(entries).map((f) => join(project, 'node_modules/meshmirror/dist', `${f}.d.ts`))
  const program = ts.createProgram(files, { ...compilerOptions(), noEmit: true })
  const checker = program.getTypeChecker()
  const out = new Map<string, ExportInfo>()
  for (const [from, f] of Object.entries(entries)) {
    const file = program.getSourceFile(join(project, 'node_modules/meshmirror/dist', `${f}.d.ts`))
    const moduleSymbol = file && checker.getSymbolAtLocation(file)
    if (!moduleSymbol) throw new Error(`no module for ${from}`)
    for (const s of checker.getExportsOfModule(moduleSymbol)) {
      const target = s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s
      if (!out.has(s.name)) out.set(s.name, { from, value: (target.flags & ts.SymbolFlags.Value) !== 0 })
    }
  }
  return out
}

function compilerOptions(): ts.CompilerOptions {
  return {
    target: ts.ScriptTarget.ES2022,
    lib: ['lib.es2023.d.ts', 'lib.esnext.disposable.d.ts'],
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    verbatimModuleSyntax: true,
    skipLibCheck: true,
    types: ['node'],
    typeRoots: [join(project, 'node_modules/@types')],
    rootDir: join(project, 'src'),
    outDir: join(project, 'out'),
  }
}

function format(d: ts.Diagnostic, where: (file: string, line: number) => string): string {
  const text = ts.flattenDiagnosticMessageText(d.messageText, '\n')
  if (!d.file || d.start === undefined) return text
  const { line } = d.file.getLineAndCharacterOfPosition(d.start)
  return `${where(d.file.fileName, line)}: TS${d.code} ${text}`
}

describe('the packed package', () => {
  it('type-checks every example of the README and docs/, and generated adapters, against the package', async () => {
    expect(examples.length).toBeGreaterThan(10)
    const exports = packageExports()
    for (const name of ['createSyncRegistry', 'openSqliteRepository', 'createSyncCoordinator', 'SEED_SETTINGS']) {
      expect(exports.get(name), name).toEqual({ from: 'meshmirror', value: true })
    }
    for (const name of ['runMeshStoreConformance', 'runAdapterAcceptance', 'runRepositoryConformance']) {
      expect(exports.get(name), name).toEqual({ from: 'meshmirror/testing', value: true })
    }

    // Generated adapters: the example models, run through the packed CLI.
    const models = join(project, 'src/models')
    mkdirSync(models, { recursive: true })
    for (const f of readdirSync(join(ROOT, 'examples/pos')).filter((f) => !f.endsWith('.g.ts'))) {
      const source = readFileSync(join(ROOT, 'examples/pos', f), 'utf8').replaceAll(
        "'../../src/index.js'",
        "'meshmirror'",
      )
      writeFileSync(join(models, f), source)
    }
    await run(process.execPath, [join(project, 'node_modules/meshmirror/dist/cli/main.js'), 'generate', 'src/models'], {
      cwd: project,
    })
    const generated = readdirSync(models).filter((f) => f.endsWith('.g.ts'))
    expect(generated).toContain('sync-adapters.g.ts')
    expect(readFileSync(join(models, 'sync-adapters.g.ts'), 'utf8')).toContain('from "meshmirror"')

    const offsets = new Map<string, { example: DocExample; added: number }>()
    for (const example of examples) {
      const file = join(project, 'src', `${example.slug}.${example.slug.endsWith('-js') ? 'js' : 'ts'}`)
      const { code, added } =
        example.kind === 'fragment' ? withImports(example.code, exports) : { code: example.code, added: 0 }
      writeFileSync(file, code)
      offsets.set(file, { example, added })
    }
    const roots = [
      ...offsets.keys(),
      ...generated.map((f) => join(models, f)),
      ...readdirSync(models).map((f) => join(models, f)),
    ]
    const program = ts.createProgram([...new Set(roots)], compilerOptions())
    const problems = ts
      .getPreEmitDiagnostics(program)
      .filter((d) => {
        const at = d.file && offsets.get(d.file.fileName)
        if (at?.example.kind !== 'fragment' || !FRAGMENT_TOLERATED.has(d.code)) return true
        // A fragment may import modules of the app around it, never a missing package entry.
        return d.code === 2307 && !/'\.\.?\//.test(ts.flattenDiagnosticMessageText(d.messageText, '\n'))
      })
      .map((d) =>
        format(d, (file, line) => {
          const at = offsets.get(file)
          // The fence line, plus one for the line after it, minus the imports added to a fragment.
          if (!at) return relative(project, file) + `:${line + 1}`
          const [page, fence] = at.example.where.split(':')
          return `${page}:${Number(fence) + 1 + line - at.added}`
        }),
      )
    expect(problems).toEqual([])
    // Emit the runnable ones for the next test.
    for (const [file, { example }] of offsets) {
      if (example.kind !== 'run') continue
      const result = program.emit(program.getSourceFile(file))
      expect(result.emitSkipped).toBe(false)
    }
  }, 60_000)

  it.each(examples.filter((e) => e.kind === 'run').map((e) => [e.where, e] as const))(
    'runs %s in an empty directory',
    async (_where, example) => {
      const dir = join(project, 'run', example.slug)
      mkdirSync(dir, { recursive: true })
      const { stderr } = await run(process.execPath, [join(project, 'out', `${example.slug}.js`)], {
        cwd: dir,
        env: {
          ...process.env,
          MESH_PORT: '0',
          MESH_SECRET: 'a secret for the docs',
          HUB_PASSWORD: 'a password for the docs',
        },
        timeout: 30_000,
      })
      expect(stderr).not.toMatch(/error/i)
      // It worked on real files: every directory and database file it names exists now.
      const paths = [...example.code.matchAll(/\b(?:dir|file): '\.\/([\w.-]+)'/g)].map((m) => m[1] ?? '')
      for (const p of paths) expect(existsSync(join(dir, p)), `${example.where} made ${p}`).toBe(true)
    },
    40_000,
  )

  it('ships the dashboard page, and it loads nothing from elsewhere', () => {
    const assets = join(project, 'node_modules/meshmirror/dist/dashboard/assets')
    expect(readdirSync(assets).sort()).toEqual(['app.css', 'app.js', 'icon.svg', 'index.html'])
    for (const file of readdirSync(assets)) {
      // No CDN, no web font: every URL the page names is its own (the SVG namespace is a name, not a load).
      const urls = readFileSync(join(assets, file), 'utf8').match(/https?:\/\/[^\s'"`)]+/g) ?? []
      expect(
        urls.filter((u) => u !== 'http://www.w3.org/2000/svg'),
        file,
      ).toEqual([])
    }
  })

  it('runs the repository conformance kit from meshmirror/testing against the packed SQLite repository', async () => {
    const test = join(project, 'repository.test.ts')
    writeFileSync(
      test,
      `import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openSqliteRepository } from 'meshmirror'
import { runRepositoryConformance } from 'meshmirror/testing'

runRepositoryConformance(async (models) => {
  const dir = mkdtempSync(join(tmpdir(), 'mm-packed-repo-'))
  const repository = await openSqliteRepository({ file: join(dir, 'app.db'), models })
  return { repository, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}, { name: 'packed SQLite' })
`,
    )
    const out = await run(
      process.execPath,
      [join(project, 'node_modules/vitest/vitest.mjs'), 'run', '--root', project, test],
      {
        cwd: project,
        env: { ...process.env, CI: '1', NO_COLOR: '1', FORCE_COLOR: '0' },
      },
    ).catch((e: { stdout: string; stderr: string }) => e)
    expect(out.stdout).toMatch(/Tests\s+\d+ passed/)
    expect(out.stdout).not.toMatch(/failed/)
  }, 60_000)
})
