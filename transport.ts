// `ff-script/transport`: what an author of another Transport (a client library other than
// ioredis or GLIDE) needs besides the interface itself: the shared rules that turn a failed
// command into a TransportError (the server's error prefixes, socket failures), how a missing
// library function is recognised, a plain command through the same classification, and the
// reader of one reply value as text. See docs/transports.md.
export {
  classifyTransportError,
  classifyWith,
  connectionError,
  isConnectFailure,
  isFunctionMissing,
  looksLikeServerError,
  sendCommand,
  serverError,
} from './runtime/classify.js';
export { TransportError, type TransportErrorKind } from './runtime/errors.js';
export { replyText } from './runtime/reply.js';
export type { BatchReply, FcallRequest, FunctionCaller, Transport } from './runtime/transport.js';
