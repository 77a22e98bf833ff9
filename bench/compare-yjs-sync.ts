// The y-websocket wire protocol, minimally: each message is a varuint type
// (0 = sync) followed by a y-protocols sync message. On open each side sends
// sync step 1 (its state vector); the answer is step 2 (what the asker lacks);
// from then on every local update is sent as an update message. Awareness is
// left out: it carries presence, not documents.

import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import type WebSocket from 'ws'
import * as sync from 'y-protocols/sync'
import type * as Y from 'yjs'

const MESSAGE_SYNC = 0

function send(ws: WebSocket, write: (e: encoding.Encoder) => void): void {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, MESSAGE_SYNC)
  write(e)
  ws.send(encoding.toUint8Array(e))
}

/** Keeps `doc` in sync with the peer at the other end of an open socket. Returns a function that stops it. */
export function syncOverSocket(doc: Y.Doc, ws: WebSocket): () => void {
  ws.binaryType = 'nodebuffer'
  ws.on('message', (data: Buffer) => {
    const d = decoding.createDecoder(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
    if (decoding.readVarUint(d) !== MESSAGE_SYNC) return
    const reply = encoding.createEncoder()
    encoding.writeVarUint(reply, MESSAGE_SYNC)
    sync.readSyncMessage(d, reply, doc, ws)
    if (encoding.length(reply) > 1) ws.send(encoding.toUint8Array(reply))
  })
  const onUpdate = (update: Uint8Array, origin: unknown) => {
    if (origin !== ws) send(ws, (e) => sync.writeUpdate(e, update))
  }
  doc.on('update', onUpdate)
  send(ws, (e) => sync.writeSyncStep1(e, doc))
  return () => doc.off('update', onUpdate)
}
