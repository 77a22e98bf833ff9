/** A JSON value as stored in a document. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue }

/** A JSON object. */
export type JsonObject = { [key: string]: JsonValue }

/**
 * A stored document: a JSON object whose `_id` is a non-empty string.
 *
 * Each top-level field is the unit of merging: concurrent writes to the same
 * field resolve by last writer wins, writes to different fields both survive.
 * Nested objects and arrays are plain values of their field and are replaced
 * as a whole.
 */
export type Document = { _id: string; [field: string]: JsonValue }

/**
 * A document as given to `upsert`. `_id` may be a finite number (it is
 * normalised to its decimal string). Top-level fields set to `undefined` are
 * treated as absent.
 */
export type DocumentInput = { _id: string | number; [field: string]: JsonValue | undefined }

/** A document id as accepted by the API: a string, or a finite number normalised to a string. */
export type DocIdInput = string | number
