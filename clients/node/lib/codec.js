// MessagePack in and out, and the small helpers every message needs
// (client_order_id, ts, topics, CURVE keys on a socket).
//
// Integers arrive as Numbers, except `ts` (int64 nanoseconds), which is always
// a BigInt, and any other integer beyond Number.MAX_SAFE_INTEGER, which stays
// a BigInt rather than being rounded.

import { randomBytes } from "node:crypto"

import { Decoder, encode } from "@msgpack/msgpack"

const decoder = new Decoder({ useBigInt64: true })

/** Keys whose value is int64 nanoseconds: always handed out as BigInt. */
const NANOSECOND_KEYS = new Set(["ts", "last_commit_ts"])

/**
 * MessagePack int64/uint64 decode as BigInt; turn those that fit a double
 * exactly back into Numbers, so only `ts` and truly huge integers are BigInt.
 * @param {unknown} value @param {string} [key]
 * @returns {any}
 */
function normalize(value, key) {
  if (typeof value === "bigint") {
    if (key !== undefined && NANOSECOND_KEYS.has(key)) return value
    const n = Number(value)
    return Number.isSafeInteger(n) ? n : value
  }
  if (typeof value === "number") {
    return key !== undefined && NANOSECOND_KEYS.has(key) && Number.isInteger(value)
      ? BigInt(value)
      : value
  }
  if (Array.isArray(value)) return value.map((item) => normalize(item))
  if (value !== null && typeof value === "object" && !(value instanceof Uint8Array)) {
    /** @type {Record<string, unknown>} */
    const out = {}
    for (const [k, v] of Object.entries(value)) out[k] = normalize(v, k)
    return out
  }
  return value
}

/**
 * Decode one payload (a reply or an event). JSON when the first byte is `{`.
 * @param {Uint8Array} payload
 * @returns {Record<string, any>}
 */
export function decodePayload(payload) {
  if (payload.length > 0 && payload[0] === 0x7b) {
    const text = Buffer.from(payload).toString("utf8")
    // JSON numbers beyond 2^53 would be rounded by JSON.parse; keep `ts` exact.
    const exact = text.replace(/"(ts|last_commit_ts)":\s*(-?\d+)/g, '"$1":"$2"')
    return reviveJson(JSON.parse(exact))
  }
  const value = normalize(decoder.decode(payload))
  if (value === null || typeof value !== "object" || typeof value.type !== "string") {
    throw new TypeError("not a qmtbus message: expected a map with a string `type`")
  }
  return value
}

/** @param {any} value @param {string} [key] @returns {any} */
function reviveJson(value, key) {
  if (key !== undefined && NANOSECOND_KEYS.has(key) && typeof value === "string") {
    return BigInt(value)
  }
  if (Array.isArray(value)) return value.map((item) => reviveJson(item))
  if (value !== null && typeof value === "object") {
    /** @type {Record<string, unknown>} */
    const out = {}
    for (const [k, v] of Object.entries(value)) out[k] = reviveJson(v, k)
    return out
  }
  return value
}

/**
 * Encode one command as MessagePack (BigInt values as int64).
 * @param {Record<string, unknown>} command a map with a `type`
 * @returns {Uint8Array}
 */
export function encodeCommand(command) {
  if (command === null || typeof command !== "object" || typeof command.type !== "string") {
    throw new TypeError("a command is an object with a string `type`, e.g. {type: \"status\"}")
  }
  return encode(command, { useBigInt64: true, ignoreUndefined: true })
}

/**
 * A fresh client_order_id: prefix + milliseconds (base 36) + "-" + 40 random
 * bits in hex; at most 24 printable ASCII characters, unique across processes
 * and restarts without coordination, sortable by creation time within a prefix.
 * @param {string} [prefix] up to 5 printable ASCII characters, e.g. a strategy tag
 * @returns {string}
 */
export function newClientOrderId(prefix = "js") {
  if (!/^[\x21-\x7e]{0,5}$/.test(prefix)) {
    throw new RangeError("client_order_id prefix: at most 5 printable ASCII characters, no spaces")
  }
  return `${prefix}${Date.now().toString(36)}-${randomBytes(5).toString("hex")}`
}

/**
 * An event's `ts` (BigInt nanoseconds) as a Date (millisecond precision).
 * @param {bigint | number} ts
 * @returns {Date}
 */
export function tsToDate(ts) {
  return new Date(Number(BigInt(ts) / 1_000_000n))
}

/**
 * A JSON.stringify replacer that writes BigInt (`ts`) as a decimal string:
 * `JSON.stringify(event, jsonReplacer)`.
 * @param {string} _key @param {unknown} value
 */
export function jsonReplacer(_key, value) {
  return typeof value === "bigint" ? value.toString() : value
}

/**
 * The PUB topic of an event: "<type>.<account_id>".
 * @param {Record<string, any>} event a map with `type` and `account_id`
 * @returns {string}
 */
export function topicOf(event) {
  return `${event.type}.${event.account_id ?? ""}`
}

/**
 * @typedef {object} CurveOptions CURVE keys (Z85 strings, 40 chars) for a gateway that requires them.
 * @property {string} serverPublicKey the gateway's public key
 * @property {string} publicKey this client's public key (on the gateway's allow-list)
 * @property {string} secretKey this client's secret key
 */

/** @param {import("zeromq").Socket} sock @param {CurveOptions | undefined} curve */
export function applyCurve(sock, curve) {
  if (!curve) return
  sock.curveServerKey = curve.serverPublicKey
  sock.curvePublicKey = curve.publicKey
  sock.curveSecretKey = curve.secretKey
}
