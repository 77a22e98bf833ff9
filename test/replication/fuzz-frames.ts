import fc from 'fast-check'

/**
 * Hostile variations of protocol messages for fuzzing: a valid message with
 * some of its values replaced (wrong types, huge or negative numbers,
 * NaN-like strings, deep nesting, unicode, prototype-pollution keys), keys
 * removed or added. Values that `JSON.stringify` cannot produce (keys named
 * `__proto__`, nesting deeper than the stack) are spliced into the frame's
 * text.
 */

type Json = null | boolean | number | string | Json[] | { [k: string]: Json }

/** A value to put somewhere: JSON, or raw frame text to splice in. */
type Hostile = { json: Json } | { raw: string }

const deep = (depth: number, open: string, close: string, inner = '1') =>
  open.repeat(depth) + inner + close.repeat(depth)

const hostileValue: fc.Arbitrary<Hostile> = fc.oneof(
  fc
    .oneof(
      fc.constantFrom(
        0,
        -1,
        -0.5,
        1.5,
        2 ** 31,
        2 ** 53,
        2 ** 53 + 2,
        -(2 ** 53),
        1e308,
        -1e308,
        Number.MIN_VALUE,
        '',
        'NaN',
        'Infinity',
        '-Infinity',
        '-1',
        '1e999',
        '0x10',
        'null',
        'undefined',
        '__proto__',
        'constructor',
        '\u0000',
        '\ud800',
        '🙂'.repeat(40),
        'a'.repeat(70_000),
        true,
        false,
        null,
      ),
      fc.integer(),
      fc.double(),
      fc.string(),
      fc.string({ unit: 'binary' }),
      fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), maxLength: 140 }),
      fc.jsonValue({ maxDepth: 3 }),
    )
    .map((json) => ({ json: json as Json })),
  fc
    .constantFrom(
      deep(200, '[', ']'),
      deep(5000, '[', ']'),
      deep(100_000, '[', ']'),
      deep(3000, '{"a":', '}'),
      '{"__proto__":{"polluted":true}}',
      '{"constructor":{"prototype":{"polluted":true}}}',
      '{"__proto__":null,"_id":"x"}',
      '1e400',
      '-1e400',
      '123456789012345678901234567890',
      '-0',
    )
    .map((raw) => ({ raw })),
)

/** A key to add: ordinary, reserved, or one JSON.stringify would not write as an own key. */
const hostileKey = fc.oneof(
  fc.constantFrom('__proto__', 'constructor', 'prototype', 't', 'n', 'v', '_id', '', 'toString', 'hasOwnProperty'),
  fc.string({ maxLength: 10 }),
)

type Mutation =
  | { kind: 'set'; path: number[]; value: Hostile }
  | { kind: 'delete'; path: number[] }
  | { kind: 'add'; path: number[]; key: string; value: Hostile }

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('set' as const),
      path: fc.array(fc.nat(), { maxLength: 6 }),
      value: hostileValue,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('delete' as const), path: fc.array(fc.nat(), { maxLength: 6 }) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('add' as const),
      path: fc.array(fc.nat(), { maxLength: 6 }),
      key: hostileKey,
      value: hostileValue,
    }),
  },
)

/**
 * Follows `path` (indices into the keys or items met on the way) as deep as
 * it goes and returns the container and key where it stopped.
 */
function locate(
  root: Json,
  path: number[],
): { parent: Json[] | Record<string, Json>; key: string | number } | undefined {
  let parent: Json[] | Record<string, Json> | undefined
  let key: string | number | undefined
  let here: Json = root
  for (const step of path) {
    if (Array.isArray(here) && here.length > 0) {
      parent = here
      key = step % here.length
    } else if (here !== null && typeof here === 'object' && Object.keys(here).length > 0) {
      const keys = Object.keys(here)
      parent = here
      key = keys[step % keys.length]!
    } else break
    here = (parent as Record<string | number, Json>)[key]!
  }
  return parent === undefined || key === undefined ? undefined : { parent, key }
}

/** Applies the mutations to a copy of `message` and encodes it, splicing raw values in. */
export function mutateFrame(message: object, mutations: readonly Mutation[]): string {
  const root = structuredClone(message) as Json
  const raws: string[] = []
  const put = (v: Hostile): Json => {
    if ('json' in v) return v.json
    raws.push(v.raw)
    return `\u0000RAW${raws.length - 1}\u0000`
  }
  for (const m of mutations) {
    const at = locate(root, m.path)
    if (!at) continue
    const { parent, key } = at
    if (m.kind === 'set') (parent as Record<string | number, Json>)[key] = put(m.value)
    else if (m.kind === 'delete') {
      if (Array.isArray(parent)) parent.splice(key as number, 1)
      else delete parent[key as string]
    } else {
      const target = (parent as Record<string | number, Json>)[key]
      if (target !== null && typeof target === 'object' && !Array.isArray(target)) {
        // A placeholder key, renamed in the text: an own `__proto__` key cannot be set here.
        raws.push(JSON.stringify(m.key))
        ;(target as Record<string, Json>)[`\u0000KEY${raws.length - 1}\u0000`] = put(m.value)
      } else (parent as Record<string | number, Json>)[key] = put(m.value)
    }
  }
  return JSON.stringify(root).replace(/"\\u0000(RAW|KEY)(\d+)\\u0000"/g, (_, _kind, i) => raws[Number(i)]!)
}

/** One to three mutations of a message. */
export const mutations: fc.Arbitrary<Mutation[]> = fc.array(mutation, { minLength: 1, maxLength: 3 })
