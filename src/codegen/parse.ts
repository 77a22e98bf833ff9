import type * as TS from 'typescript'
import type { BackupLink, Direction } from '../bridge/adapter.js'
import type { FieldInput, FieldTypeInput } from './define-model.js'
import { normaliseModel } from './define-model.js'
import type { ModelSpec } from './model-spec.js'

/** A problem in a model source, located precisely. */
export interface ModelProblem {
  file: string
  line: number
  /** The class, and the field when it is about one. */
  model?: string
  field?: string
  message: string
}

/** A model found in a source file. */
export interface ParsedModel {
  file: string
  line: number
  spec: ModelSpec
}

const FIELD_DECORATORS = new Set(['Id', 'Field', 'CounterField', 'BackupLink', 'Ignore'])
const DIRECTIONS = new Set(['sendOnly', 'receiveOnly', 'bidirectional'])

/**
 * Reads `@SyncModel` classes from TypeScript sources with the compiler API
 * (types are resolved by the checker, so aliases and enums work). Returns
 * every model and every problem; callers write nothing when there is a problem.
 */
export function parseModels(
  ts: typeof TS,
  files: readonly string[],
): { models: ParsedModel[]; problems: ModelProblem[] } {
  const program = ts.createProgram([...files], {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    skipLibCheck: true,
    noEmit: true,
  })
  const checker = program.getTypeChecker()
  const models: ParsedModel[] = []
  const problems: ModelProblem[] = []
  const wanted = new Set(files.map((f) => ts.sys.resolvePath(f)))

  for (const source of program.getSourceFiles()) {
    if (!wanted.has(ts.sys.resolvePath(source.fileName))) continue
    const where = (node: TS.Node) => ({
      file: source.fileName,
      line: source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1,
    })
    const visit = (node: TS.Node): void => {
      if (ts.isDecorator(node)) checkPlacement(ts, node, where, problems)
      if (ts.isClassDeclaration(node)) {
        const deco = findDecorator(ts, node, 'SyncModel')
        if (deco) {
          const parsed = parseClass(ts, checker, node, deco, where, problems)
          if (parsed) models.push(parsed)
        }
      }
      ts.forEachChild(node, visit)
    }
    visit(source)
  }

  const byCollection = new Map<string, ParsedModel>()
  for (const m of models) {
    const other = byCollection.get(m.spec.collection)
    if (other) {
      problems.push({
        file: m.file,
        line: m.line,
        model: m.spec.name,
        message: `collection ${JSON.stringify(m.spec.collection)} is already used by ${other.spec.name} (${other.file}:${other.line})`,
      })
    } else byCollection.set(m.spec.collection, m)
  }
  return { models, problems }
}

function decoratorName(ts: typeof TS, d: TS.Decorator): string | undefined {
  const e = d.expression
  const callee = ts.isCallExpression(e) ? e.expression : e
  return ts.isIdentifier(callee) ? callee.text : undefined
}

function findDecorator(ts: typeof TS, node: TS.HasDecorators, name: string): TS.Decorator | undefined {
  return ts.getDecorators(node)?.find((d) => decoratorName(ts, d) === name)
}

function checkPlacement(
  ts: typeof TS,
  d: TS.Decorator,
  where: (n: TS.Node) => { file: string; line: number },
  problems: ModelProblem[],
): void {
  const name = decoratorName(ts, d)
  if (name === 'SyncModel' && !ts.isClassDeclaration(d.parent)) {
    problems.push({ ...where(d), message: '@SyncModel is only valid on a class declaration' })
  }
  if (name && FIELD_DECORATORS.has(name) && !ts.isPropertyDeclaration(d.parent)) {
    problems.push({ ...where(d), message: `@${name} is only valid on a class property` })
  }
}

/** Evaluates a literal decorator argument; anything else is a problem. */
function literal(ts: typeof TS, node: TS.Expression): unknown {
  if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) return node.text
  if (ts.isNumericLiteral(node)) return Number(node.text)
  if (
    ts.isPrefixUnaryExpression(node) &&
    node.operator === ts.SyntaxKind.MinusToken &&
    ts.isNumericLiteral(node.operand)
  ) {
    return -Number(node.operand.text)
  }
  if (node.kind === ts.SyntaxKind.TrueKeyword) return true
  if (node.kind === ts.SyntaxKind.FalseKeyword) return false
  if (node.kind === ts.SyntaxKind.NullKeyword) return null
  if (ts.isArrayLiteralExpression(node)) return node.elements.map((e) => literal(ts, e))
  if (ts.isAsExpression(node) || ts.isSatisfiesExpression(node) || ts.isParenthesizedExpression(node)) {
    return literal(ts, node.expression)
  }
  if (ts.isObjectLiteralExpression(node)) {
    const out: Record<string, unknown> = {}
    for (const p of node.properties) {
      if (!ts.isPropertyAssignment(p) || !(ts.isIdentifier(p.name) || ts.isStringLiteral(p.name))) {
        throw new Error('only plain `key: value` properties are allowed')
      }
      out[p.name.text] = literal(ts, p.initializer)
    }
    return out
  }
  throw new Error(`${node.getText()} is not a literal (use strings, numbers, booleans, arrays and objects)`)
}

function args(ts: typeof TS, d: TS.Decorator): unknown[] {
  return ts.isCallExpression(d.expression) ? d.expression.arguments.map((a) => literal(ts, a)) : []
}

function parseClass(
  ts: typeof TS,
  checker: TS.TypeChecker,
  node: TS.ClassDeclaration,
  deco: TS.Decorator,
  where: (n: TS.Node) => { file: string; line: number },
  problems: ModelProblem[],
): ParsedModel | undefined {
  const name = node.name?.text ?? 'default'
  const at = where(node)
  const problem = (n: TS.Node, message: string, field?: string) =>
    problems.push({ ...where(n), model: name, ...(field ? { field } : {}), message })
  let collection: unknown
  let options: Record<string, unknown> = {}
  try {
    ;[collection, options = {}] = args(ts, deco) as [unknown, Record<string, unknown>]
  } catch (e) {
    problem(deco, `@SyncModel: ${(e as Error).message}`)
    return undefined
  }
  if (typeof collection !== 'string') {
    problem(deco, '@SyncModel needs the collection name as its first argument')
    return undefined
  }
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    problem(deco, '@SyncModel options must be an object')
    return undefined
  }
  if (options.direction !== undefined && !DIRECTIONS.has(options.direction as string)) {
    problem(deco, `@SyncModel direction must be one of ${[...DIRECTIONS].join(', ')}`)
    return undefined
  }

  const fields: Record<string, FieldInput> = {}
  const links: BackupLink[] = []
  const before = problems.length
  for (const member of node.members) {
    if (!ts.isPropertyDeclaration(member)) continue
    if (member.modifiers?.some((m) => m.kind === ts.SyntaxKind.StaticKeyword)) continue
    if (!ts.isIdentifier(member.name)) {
      problem(member, 'synced properties need a plain identifier name')
      continue
    }
    const prop = member.name.text
    const decos = ts.getDecorators(member) ?? []
    const kinds = decos
      .map((d) => decoratorName(ts, d))
      .filter((n): n is string => n !== undefined && FIELD_DECORATORS.has(n))
    if (kinds.includes('Ignore')) continue
    let fieldOptions: Record<string, unknown> = {}
    const memberLinks: Omit<BackupLink, 'field'>[] = []
    try {
      for (const d of decos) {
        const kind = decoratorName(ts, d)
        if (kind === 'BackupLink') {
          const [link] = args(ts, d) as [Record<string, unknown>]
          if (typeof link?.model !== 'string') throw new Error('@BackupLink needs { model }')
          memberLinks.push(link as Omit<BackupLink, 'field'>)
        } else if (kind && FIELD_DECORATORS.has(kind)) {
          const [o = {}] = args(ts, d) as [Record<string, unknown>]
          fieldOptions = { ...fieldOptions, ...o }
        }
      }
    } catch (e) {
      problem(member, (e as Error).message, prop)
      continue
    }
    const docField = typeof fieldOptions.name === 'string' ? fieldOptions.name : prop
    for (const link of memberLinks) links.push({ field: docField, ...link })
    const declared = fieldOptions.type as FieldTypeInput | undefined
    const inferred = typeOf(ts, checker, member)
    const resolved =
      declared === undefined
        ? inferred
        : { ...(isProblem(inferred) ? { nullable: false, optional: false } : inferred), type: declared }
    if (isProblem(resolved)) {
      problem(member, resolved.problem, prop)
      continue
    }
    const counter = kinds.includes('CounterField')
    if (counter && !['number', 'integer'].includes(String(resolved.type))) {
      problem(member, '@CounterField needs a number', prop)
      continue
    }
    fields[prop] = {
      type: resolved.type,
      id: kinds.includes('Id'),
      counter,
      optional: resolved.optional || member.questionToken !== undefined,
      nullable: resolved.nullable,
      ...(typeof fieldOptions.column === 'string' ? { column: fieldOptions.column } : {}),
      ...(typeof fieldOptions.name === 'string' ? { name: fieldOptions.name } : {}),
      ...(fieldOptions.alias !== undefined ? { alias: fieldOptions.alias as string | string[] } : {}),
    }
  }
  if (problems.length > before) return undefined
  try {
    const spec = normaliseModel(
      {
        collection,
        fields,
        links,
        ...(typeof options.model === 'string' ? { model: options.model } : {}),
        ...(options.direction ? { direction: options.direction as Direction } : {}),
        ...(typeof options.hydrateOnStartup === 'boolean' ? { hydrateOnStartup: options.hydrateOnStartup } : {}),
        ...(typeof options.backupPull === 'boolean' ? { backupPull: options.backupPull } : {}),
        ...(options.scope !== undefined ? { scope: options.scope as string[] } : {}),
        ...(options.keys !== undefined ? { keys: options.keys as 'global' | 'local' } : {}),
      },
      name,
    )
    return { ...at, spec }
  } catch (e) {
    problems.push({ ...at, model: name, message: (e as Error).message.replace(/^Model \w+: /, '') })
    return undefined
  }
}

/** A reason a property's type cannot be synced. */
interface Problem {
  problem: string
}

const isProblem = (v: unknown): v is Problem => typeof v === 'object' && v !== null && 'problem' in v

/** The field type of a property declaration, or a problem. */
function typeOf(
  ts: typeof TS,
  checker: TS.TypeChecker,
  member: TS.PropertyDeclaration,
): { type: FieldTypeInput; nullable: boolean; optional: boolean } | Problem {
  if (!member.type) return { problem: 'declare its type (e.g. `count!: number`)' }
  const type = checker.getTypeFromTypeNode(member.type)
  let nullable = false
  let optional = false
  let kept = [type]
  if (type.isUnion() && !(type.flags & ts.TypeFlags.EnumLike)) {
    kept = type.types.filter((t) => {
      if (t.flags & ts.TypeFlags.Null) nullable = true
      else if (t.flags & ts.TypeFlags.Undefined) optional = true
      else return true
      return false
    })
    if (kept.length === 0) return { problem: 'a field cannot be only null or undefined' }
  }
  const mapped = unionType(ts, checker, kept)
  return isProblem(mapped) ? mapped : { type: mapped, nullable, optional }
}

function unionType(ts: typeof TS, checker: TS.TypeChecker, types: TS.Type[]): FieldTypeInput | Problem {
  if (types.length === 1) return mapType(ts, checker, types[0]!)
  if (types.every((t) => t.flags & ts.TypeFlags.BooleanLiteral)) return 'boolean'
  if (types.every((t) => t.isStringLiteral() || t.isNumberLiteral() || t.flags & ts.TypeFlags.EnumLiteral)) {
    return { enum: types.map((t) => (t as TS.LiteralType).value as string | number) }
  }
  return {
    problem: `unsupported union type ${types.map((t) => checker.typeToString(t)).join(' | ')}: use one type, a union of literals, or an enum`,
  }
}

function mapType(ts: typeof TS, checker: TS.TypeChecker, type: TS.Type): FieldTypeInput | Problem {
  const f = type.flags
  if (f & ts.TypeFlags.EnumLike) {
    const values = type.isUnion() ? type.types : [type]
    return { enum: values.map((t) => (t as TS.LiteralType).value as string | number) }
  }
  if (type.isUnion()) return unionType(ts, checker, type.types)
  if (f & ts.TypeFlags.String) return 'string'
  if (f & ts.TypeFlags.Number) return 'number'
  if (f & (ts.TypeFlags.Boolean | ts.TypeFlags.BooleanLiteral)) return 'boolean'
  if (type.isStringLiteral() || type.isNumberLiteral()) return { enum: [type.value] }
  if (type.getSymbol()?.getName() === 'Date') return 'date'
  if (checker.isArrayType(type)) {
    const [element] = checker.getTypeArguments(type as TS.TypeReference)
    const inner = element ? mapType(ts, checker, element) : { problem: 'unknown element type' }
    return isProblem(inner) ? { problem: `unsupported array element: ${inner.problem}` } : { array: inner }
  }
  if (f & ts.TypeFlags.Object && type.getCallSignatures().length === 0) {
    const sym = type.getSymbol()?.getName()
    if (sym && ['Map', 'Set', 'Promise', 'RegExp', 'Uint8Array', 'Buffer', 'WeakMap'].includes(sym)) {
      return { problem: `unsupported type ${sym}: store it as a plain object, array or string` }
    }
    return 'json'
  }
  return { problem: `unsupported type ${checker.typeToString(type)}` }
}
