// QuoteStream: live `tick` events of chosen codes from the gateway's quotes
// socket, with the subscription held (and renewed) at the gateway.

import { randomBytes } from "node:crypto"

import * as zmq from "zeromq"

import { applyCurve, decodePayload } from "./codec.js"
import { DEFAULT_COMMANDS_ADDRESS, Gateway, isTimeout } from "./gateway.js"

export const DEFAULT_QUOTES_ADDRESS = "tcp://127.0.0.1:7104"

/**
 * @typedef {object} QuoteStreamOptions
 * @property {string[]} codes stock codes to tick, e.g. ["600000.SH"]
 * @property {string} [quotesAddress] the gateway's quotes PUB; default tcp://127.0.0.1:7104
 * @property {string} [commandsAddress] for subscribe_quotes; default tcp://127.0.0.1:7102
 * @property {Gateway} [gateway] use this client for commands instead of opening one
 * @property {string} [clientId] the name this stream holds its codes under; default a random
 *   "node-..." (so a retry on a fresh socket keeps the same holding)
 * @property {number} [silenceMs] with no tick for this long, subscribe again (a restarted
 *   gateway forgets subscriptions); default 10000
 * @property {import("./codec.js").CurveOptions} [curve] CURVE keys, when the gateway is not on loopback
 */

/**
 * Live ticks of `codes`, in the order the gateway published them.
 *
 * Ticks are market data, not records: the gateway keeps only the latest tick
 * per symbol when it is busy, and its quotes socket drops ticks for a reader
 * that falls behind. `seq` counts every tick of every code the gateway
 * publishes, so it jumps between the ticks of the codes you hold; a jump is
 * never an error and nothing is replayed. The stream renews its subscription
 * within the gateway's `quote_lease`, and subscribes again after `silenceMs`
 * without a tick.
 *
 *     const quotes = new QuoteStream({ codes: ["600000.SH"], gateway: gw })
 *     await quotes.ready()
 *     for await (const tick of quotes) console.log(tick.stock_code, tick.lastPrice, tick.askPrice[0])
 */
export class QuoteStream {
  /** @param {QuoteStreamOptions} options */
  constructor(options) {
    this.quotesAddress = options.quotesAddress ?? DEFAULT_QUOTES_ADDRESS
    this.codes = [...new Set(options.codes ?? [])]
    this.clientId = options.clientId ?? `node-${randomBytes(6).toString("hex")}`
    this.silenceMs = options.silenceMs ?? 10_000
    this._ownGateway = options.gateway === undefined
    this.gateway =
      options.gateway ??
      new Gateway({ address: options.commandsAddress ?? DEFAULT_COMMANDS_ADDRESS, curve: options.curve })
    /** @type {Map<string, Record<string, any>>} */
    this._latest = new Map()
    this._closed = false
    /** @type {NodeJS.Timeout | null} */
    this._renewTimer = null
    /** @type {Promise<void> | null} */
    this._subscribed = null
    this._socket = new zmq.Subscriber({ linger: 0 })
    applyCurve(this._socket, options.curve)
    for (const code of this.codes) this._socket.subscribe(`tick.${code}`)
    this._socket.connect(this.quotesAddress)
  }

  /**
   * Resolve once the gateway holds the codes for this stream (its `quotes_ack`).
   * Ticks follow at the gateway's quote rate; `gateway.queryQuote` answers at once.
   * NOT_FOUND (QmtbusError) names a code the broker does not know.
   */
  ready() {
    this._subscribed ??= this._subscribe()
    return this._subscribed
  }

  async _subscribe() {
    const ack = await this.gateway.subscribeQuotes(this.codes, { client_id: this.clientId })
    this._scheduleRenewal(Number(ack.quote_lease) || 300)
  }

  /** @param {number} leaseSeconds */
  _scheduleRenewal(leaseSeconds) {
    if (this._renewTimer !== null || this._closed) return
    // Three renewals per lease: one lost request never lets the holding lapse.
    this._renewTimer = setInterval(() => {
      this.gateway.subscribeQuotes(this.codes, { client_id: this.clientId }).catch(() => undefined)
    }, (leaseSeconds * 1000) / 3)
    this._renewTimer.unref() // renewal alone must not keep a program alive
  }

  /** The last tick this stream saw of `code`, or undefined. @param {string} code */
  latest(code) {
    return this._latest.get(code)
  }

  /**
   * The next tick of one of the codes.
   * @returns {Promise<Record<string, any>>}
   */
  async next() {
    await this.ready()
    for (;;) {
      if (this._closed) throw new Error("this QuoteStream is closed")
      this._socket.receiveTimeout = this.silenceMs
      let frames
      try {
        frames = await this._socket.receive()
      } catch (err) {
        if (!isTimeout(err)) throw err
        // Quiet market, or a restarted gateway that forgot us: ask again (idempotent).
        await this.gateway.subscribeQuotes(this.codes, { client_id: this.clientId })
        continue
      }
      let tick
      try {
        tick = decodePayload(frames[frames.length - 1])
      } catch {
        continue // not ours to crash on
      }
      this._latest.set(String(tick.stock_code), tick)
      return tick
    }
  }

  /** @returns {AsyncIterator<Record<string, any>>} */
  [Symbol.asyncIterator]() {
    return {
      next: async () =>
        this._closed ? { done: true, value: undefined } : { done: false, value: await this.next() },
      return: async () => ({ done: true, value: undefined }),
    }
  }

  /** Stop renewing, release the codes at the gateway (best effort), close the socket. */
  async close() {
    if (this._closed) return
    this._closed = true
    if (this._renewTimer !== null) clearInterval(this._renewTimer)
    this._socket.close()
    try {
      if (this._subscribed !== null) {
        // One quick try: closing must not hang on a gateway that is gone.
        const command = { type: "unsubscribe_quotes", stock_codes: this.codes, client_id: this.clientId }
        await this.gateway.request(command, { timeoutMs: 1000, retries: 0 })
      }
    } catch {
      // the lease lets it lapse anyway
    } finally {
      if (this._ownGateway) this.gateway.close()
    }
  }
}
