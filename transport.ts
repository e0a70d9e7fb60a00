// `ff-script/transport`: what an author of another Transport (a client library other than
// ioredis) needs besides the interface itself: how the client classifies a failure, how it
// recognises a missing library function, a plain command through the same classification,
// and the reader of one reply value as text.
export { classifyTransportError, isFunctionMissing, sendCommand } from './runtime/classify.js';
export { TransportError, type TransportErrorKind } from './runtime/errors.js';
export { replyText } from './runtime/reply.js';
export type { BatchReply, FcallRequest, FunctionCaller, Transport } from './runtime/transport.js';
