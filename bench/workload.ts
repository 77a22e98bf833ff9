/** The benchmarks' standard document: eight fields of mixed types, about 100 bytes of JSON. */
export function eightFields(j: number) {
  return {
    _id: `d${j}`,
    a: j,
    b: `name ${j}`,
    c: j % 7 === 0,
    d: j * 1.5,
    e: 'x'.repeat(20),
    f: j % 100,
    g: null,
    h: 'shop',
  }
}
