#!/usr/bin/env node
// Example strategy: read the live quote of a stock from the qmtbus gateway, buy
// 100 shares with a limit price taken from it (the best ask plus a little),
// wait for the fill on the event stream, print it as one JSON line.
//
//   QMTBUS_COMMANDS   gateway command address   (default tcp://127.0.0.1:7102)
//   QMTBUS_EVENTS     gateway event address     (default tcp://127.0.0.1:7101)
//   QMTBUS_QUOTES     gateway quotes address    (default tcp://127.0.0.1:7104)
//   QMTBUS_STOCK      stock_code                (default 600000.SH)
//   QMTBUS_VOLUME     shares                    (default 100)
//   QMTBUS_SLIPPAGE   % above the best ask for the limit (default 1, keep under
//                     the gateway's fat_finger_pct)
//   QMTBUS_TIMEOUT    seconds to wait for a tick, and then for the fill (default 30)
//
// Exit codes: 0 filled; 1 the order failed (rejected, denied, cancelled, error,
// unknown stock); 2 timed out (the order is cancelled) or no gateway; 64 bad settings.

import {
  EventStream,
  FINAL_ORDER_STATUSES,
  Gateway,
  GatewaySilent,
  GatewayUnreachable,
  ORDER_SUCCEEDED,
  QmtbusError,
  QuoteStream,
  newClientOrderId,
} from "./qmtbus.js"

class Failure extends Error {
  /** @param {string} message @param {number} exitCode */
  constructor(message, exitCode) {
    super(message)
    this.exitCode = exitCode
  }
}

const env = process.env
const settings = {
  commands: env.QMTBUS_COMMANDS || "tcp://127.0.0.1:7102",
  events: env.QMTBUS_EVENTS || "tcp://127.0.0.1:7101",
  quotes: env.QMTBUS_QUOTES || "tcp://127.0.0.1:7104",
  stock_code: env.QMTBUS_STOCK || "600000.SH",
  volume: Number(env.QMTBUS_VOLUME || 100),
  slippagePct: Number(env.QMTBUS_SLIPPAGE || 1),
  timeoutMs: Number(env.QMTBUS_TIMEOUT || 30) * 1000,
}

/** Funds and ETFs trade in 0.001 CNY, stocks in 0.01. @param {string} code */
function tickMils(code) {
  return /^(5\d{5}\.SH|1[5-8]\d{4}\.SZ)$/.test(code) ? 1 : 10
}

/**
 * The quote to trade on: `query_quote` first (it answers at once, and NOT_FOUND
 * for a code the broker does not know), then the next live tick, which is what
 * the limit is taken from.
 * @param {Gateway} gw @param {QuoteStream} quotes
 */
async function liveQuote(gw, quotes) {
  const [queried] = await gw.queryQuote([settings.stock_code])
  if (!(queried.lastPrice > 0)) {
    throw new Failure(`${settings.stock_code} has no last price (suspended, or not traded yet)`, 1)
  }
  const tick = await within(quotes.next(), settings.timeoutMs, `a live tick of ${settings.stock_code}`)
  return { queried, tick }
}

/**
 * A limit price at or above the market: the best ask (the last price when the
 * ask side is empty) plus the slippage, rounded up to the tick (computed in
 * mils so no float drifts), never above the day's upper limit.
 * @param {Record<string, any>} tick
 */
function marketableLimit(tick) {
  const ask = tick.askPrice?.[0] > 0 ? tick.askPrice[0] : tick.lastPrice
  const step = tickMils(settings.stock_code)
  let mils = Math.ceil((Math.round(ask * 1000) * (100 + settings.slippagePct)) / 100 / step) * step
  if (tick.upStopPrice > 0) mils = Math.min(mils, Math.round(tick.upStopPrice * 1000))
  return { reference: ask, limit: mils / 1000 }
}

/**
 * Wait on the stream until the order is final and every share's trade has arrived.
 * @param {EventStream} stream @param {string} clientOrderId
 */
async function waitForFill(stream, clientOrderId) {
  /** @type {Map<string, Record<string, any>>} */
  const trades = new Map()
  /** @type {Record<string, any> | null} */
  let final = null
  for await (const event of stream) {
    if (event.client_order_id !== clientOrderId) continue
    if (event.type === "trade") trades.set(event.traded_id, event)
    else if (event.type === "order" && FINAL_ORDER_STATUSES.has(event.order_status)) final = event
    else if (event.type === "order_error") {
      throw new Failure(`order_error ${event.error_id}: ${event.error_msg}`, 1)
    } else if (event.type === "risk_denied") {
      throw new Failure(`risk_denied by ${event.rule}: ${event.message}`, 1)
    }
    if (final === null) continue
    if (final.order_status !== ORDER_SUCCEEDED) {
      throw new Failure(
        `order ${final.order_id} ended with order_status ${final.order_status}: ${final.status_msg}`,
        1,
      )
    }
    const filled = [...trades.values()].reduce((sum, t) => sum + t.traded_volume, 0)
    if (filled >= final.order_volume) return { order: final, trades: [...trades.values()] }
  }
  throw new Failure("the event stream ended before the fill", 2)
}

/** @template T @param {Promise<T>} promise @param {number} ms @param {string} what @returns {Promise<T>} */
function within(promise, ms, what) {
  /** @type {NodeJS.Timeout | undefined} */
  let timer
  const expired = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Failure(`timed out after ${ms / 1000} s waiting for ${what}`, 2)), ms)
  })
  // The loser of the race still settles later (the stream is closed under it); not an error.
  promise.catch(() => undefined)
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer))
}

async function main() {
  if (!(settings.volume > 0) || !(settings.slippagePct >= 0) || !(settings.timeoutMs > 0)) {
    throw new Failure("QMTBUS_VOLUME, QMTBUS_SLIPPAGE and QMTBUS_TIMEOUT must be positive numbers", 64)
  }
  const gw = new Gateway({ address: settings.commands })
  const stream = new EventStream({
    eventsAddress: settings.events,
    gateway: gw,
    prefixes: ["order.", "trade.", "order_error.", "risk_denied."],
  })
  const quotes = new QuoteStream({ quotesAddress: settings.quotes, gateway: gw, codes: [settings.stock_code] })
  try {
    // Subscribe first, so the order's events cannot slip past before we listen.
    await stream.ready()
    await quotes.ready()
    const { queried, tick } = await liveQuote(gw, quotes)
    const { reference, limit: price } = marketableLimit(tick)
    const clientOrderId = newClientOrderId("node")
    const ack = await gw.buy(settings.stock_code, settings.volume, price, {
      client_order_id: clientOrderId,
      strategy_name: "node-example",
    })
    if (ack.status === "rejected") throw new Failure(`the broker rejected the order: ${ack.error_msg}`, 1)
    const { order, trades } = await within(
      waitForFill(stream, clientOrderId),
      settings.timeoutMs,
      `the fill of ${clientOrderId}`,
    ).catch(async (err) => {
      // Leave no order resting in the market behind a strategy that gave up on it.
      if (err instanceof Failure && err.exitCode === 2) {
        const cancel = await gw.cancel(clientOrderId).then(
          () => "cancel sent",
          (/** @type {Error} */ e) => `cancel failed: ${e.message}`,
        )
        err.message += `; ${cancel}`
      }
      throw err
    })
    const amount = trades.reduce((sum, t) => sum + t.traded_volume * t.traded_price, 0)
    const volume = trades.reduce((sum, t) => sum + t.traded_volume, 0)
    const fill = {
      client_order_id: clientOrderId,
      order_id: order.order_id,
      stock_code: order.stock_code,
      order_status: order.order_status,
      limit_price: price,
      reference_price: reference,
      quote: { seq: tick.seq, time: tick.time, lastPrice: tick.lastPrice, queried: queried.lastPrice },
      volume,
      price: Math.round((amount / volume) * 1000) / 1000,
      traded_ids: trades.map((t) => t.traded_id),
      ts: String(order.ts), // nanoseconds; a BigInt in the library
    }
    console.log(JSON.stringify(fill))
  } finally {
    await quotes.close()
    stream.close()
    gw.close()
  }
}

main().catch((err) => {
  const exitCode =
    err instanceof Failure
      ? err.exitCode
      : err instanceof GatewayUnreachable || err instanceof GatewaySilent
        ? 2
        : 1
  const text = err instanceof QmtbusError ? String(err) : err instanceof Error ? err.message : err
  console.error(`error: ${text}`)
  process.exitCode = exitCode
})
