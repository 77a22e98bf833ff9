/** The key of a document across models. */
export function docKey(model: string, id: string): string {
  return `${model}\u0000${id}`
}
