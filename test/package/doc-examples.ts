import { readdirSync, readFileSync } from 'node:fs'
import { basename, join } from 'node:path'

/**
 * How an example in the Markdown is checked, from its fence's info string:
 *
 * - ` ```ts ` — a standalone program: type-checked strictly against the
 *   packed package and run, in an empty directory of its own.
 * - ` ```ts no-run ` — standalone and type-checked, not run: it needs what a
 *   test cannot give it (the Ditto SDK, a fixed port, a peer on the LAN).
 * - ` ```ts fragment ` — an excerpt that uses names from around it (`mesh`,
 *   an adapter of the app). Names the package exports are imported for it;
 *   the rest is type-checked as far as it can be: only diagnostics about
 *   names or relative modules it does not define are ignored.
 */
export type ExampleKind = 'run' | 'no-run' | 'fragment'

export interface DocExample {
  /** `README.md:126`: where the fence starts. */
  where: string
  /** A file name for it: `readme-126`. */
  slug: string
  kind: ExampleKind
  code: string
}

const FENCE = /^```(ts|typescript|js|javascript)((?:[ \t]+[\w-]+)*)[ \t]*\n([\s\S]*?)^```[ \t]*$/gm

/** The TypeScript and JavaScript examples of the README and of every page in `docs/`. */
export function docExamples(root: string): DocExample[] {
  const pages = [
    join(root, 'README.md'),
    ...readdirSync(join(root, 'docs'))
      .filter((f) => f.endsWith('.md'))
      .sort()
      .map((f) => join(root, 'docs', f)),
  ]
  const out: DocExample[] = []
  for (const page of pages) {
    const text = readFileSync(page, 'utf8')
    for (const m of text.matchAll(FENCE)) {
      const line = text.slice(0, m.index).split('\n').length
      const words = (m[2] ?? '').trim().split(/\s+/).filter(Boolean)
      const unknown = words.filter((w) => w !== 'fragment' && w !== 'no-run')
      const rel = page === join(root, 'README.md') ? 'README.md' : `docs/${basename(page)}`
      if (unknown.length > 0) throw new Error(`${rel}:${line}: unknown fence words ${unknown.join(' ')}`)
      const kind: ExampleKind = words.includes('fragment') ? 'fragment' : words.includes('no-run') ? 'no-run' : 'run'
      const ext = m[1] === 'js' || m[1] === 'javascript' ? 'js' : 'ts'
      out.push({
        where: `${rel}:${line}`,
        slug: `${basename(page, '.md').toLowerCase()}-${line}${ext === 'js' ? '-js' : ''}`,
        kind,
        code: m[3] ?? '',
      })
    }
  }
  return out
}

/** Diagnostics a fragment may have: names and relative modules that the text around it defines. */
export const FRAGMENT_TOLERATED = new Set([
  2304, // Cannot find name 'x'.
  2552, // Cannot find name 'x'. Did you mean 'y'?
  2307, // Cannot find module './x' (relative only; see the test).
  18004, // No value exists in scope for the shorthand property 'x'.
  7006, // Parameter implicitly has an 'any' type (its context is one of those names).
  7031, // Binding element implicitly has an 'any' type.
])

/**
 * The fragment with imports added for the names it uses that the package
 * exports and that it neither imports nor declares itself.
 */
export function withImports(
  code: string,
  exports: ReadonlyMap<string, { from: string; value: boolean }>,
): { code: string; added: number } {
  const own = new Set<string>()
  for (const m of code.matchAll(/import\s+(?:type\s+)?\{([^}]*)\}/g)) {
    for (const n of (m[1] ?? '').split(',')) {
      const name = n
        .trim()
        .replace(/^type\s+/, '')
        .split(/\s+as\s+/)
        .pop()
      if (name) own.add(name)
    }
  }
  for (const m of code.matchAll(/\b(?:const|let|var|function|class|interface|type)\s+([A-Za-z_$][\w$]*)/g)) {
    if (m[1]) own.add(m[1])
  }
  const bySource = new Map<string, string[]>()
  const words = new Set(code.replace(/\/\/.*$/gm, '').match(/\b[A-Za-z_$][\w$]*\b/g) ?? [])
  for (const word of words) {
    const e = exports.get(word)
    if (!e || own.has(word)) continue
    const list = bySource.get(e.from) ?? []
    list.push(e.value ? word : `type ${word}`)
    bySource.set(e.from, list)
  }
  const header = [...bySource].map(([from, names]) => `import { ${names.join(', ')} } from '${from}'`)
  // Always a module, so that top-level await is allowed.
  return { code: `${header.join('\n')}\nexport {}\n${code}`, added: header.length + 1 }
}
