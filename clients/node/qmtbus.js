// qmtbus for Node.js: trade a miniQMT account through the qmtbus gateway.
//
//   Gateway      commands (REQ): order, buy, sell, cancel, queries, status, note, ...
//   EventStream  events (SUB) in seq order, holes filled by `replay`
//   QuoteStream  ticks (SUB on the quotes socket) of the codes it holds at the gateway
//
// Wire format: docs/PROTOCOL.md. Field names on the wire and in every
// object you get back are xtquant's (`stock_code`, `order_volume`,
// `order_status`, ...); `ts` is a BigInt of nanoseconds (see lib/codec.js).

export {
  applyCurve,
  decodePayload,
  encodeCommand,
  jsonReplacer,
  newClientOrderId,
  topicOf,
  tsToDate,
} from "./lib/codec.js"
export {
  BadReply,
  EventsLost,
  GatewaySilent,
  GatewayUnreachable,
  NotConnected,
  QmtbusError,
  RiskDenied,
} from "./lib/errors.js"
export { DEFAULT_COMMANDS_ADDRESS, Gateway } from "./lib/gateway.js"
export { DEFAULT_QUOTES_ADDRESS, QuoteStream } from "./lib/quotes.js"
export { DEFAULT_EVENTS_ADDRESS, EventStream } from "./lib/stream.js"

export const PROTOCOL_VERSION = 1

// xtconstant values (the same numbers as protocol.py).
export const STOCK_BUY = 23
export const STOCK_SELL = 24
export const FIX_PRICE = 11
export const LATEST_PRICE = 5
export const ORDER_UNREPORTED = 48
export const ORDER_WAIT_REPORTING = 49
export const ORDER_REPORTED = 50
export const ORDER_REPORTED_CANCEL = 51
export const ORDER_PARTSUCC_CANCEL = 52
export const ORDER_PART_CANCEL = 53
export const ORDER_CANCELED = 54
export const ORDER_PART_SUCC = 55
export const ORDER_SUCCEEDED = 56
export const ORDER_JUNK = 57
export const ORDER_UNKNOWN = 255
/** Order statuses after which nothing more happens to an order. */
export const FINAL_ORDER_STATUSES = new Set([
  ORDER_PART_CANCEL,
  ORDER_CANCELED,
  ORDER_SUCCEEDED,
  ORDER_JUNK,
])
