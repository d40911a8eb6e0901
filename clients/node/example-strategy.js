#!/usr/bin/env node
// Example strategy: buy 100 shares with a marketable limit order through the
// qmtbus gateway, wait for the fill on the event stream, print it as one JSON line.
//
//   QMTBUS_COMMANDS   gateway command address   (default tcp://127.0.0.1:7102)
//   QMTBUS_EVENTS     gateway event address     (default tcp://127.0.0.1:7101)
//   QMTBUS_STOCK      stock_code                (default 600000.SH)
//   QMTBUS_VOLUME     shares                    (default 100)
//   QMTBUS_PRICE      reference price; without it, the last_price of a held position
//   QMTBUS_SLIPPAGE   % above the reference for the limit (default 1, keep under
//                     the gateway's fat_finger_pct)
//   QMTBUS_TIMEOUT    seconds to wait for the fill (default 30)
//
// Exit codes: 0 filled; 1 the order failed (rejected, denied, cancelled, error);
// 2 timed out (the order is cancelled) or no gateway; 64 bad settings.

import {
  EventStream,
  FINAL_ORDER_STATUSES,
  Gateway,
  GatewaySilent,
  GatewayUnreachable,
  ORDER_SUCCEEDED,
  QmtbusError,
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
  stock_code: env.QMTBUS_STOCK || "600000.SH",
  volume: Number(env.QMTBUS_VOLUME || 100),
  price: env.QMTBUS_PRICE ? Number(env.QMTBUS_PRICE) : undefined,
  slippagePct: Number(env.QMTBUS_SLIPPAGE || 1),
  timeoutMs: Number(env.QMTBUS_TIMEOUT || 30) * 1000,
}

/** Funds and ETFs trade in 0.001 CNY, stocks in 0.01. @param {string} code */
function tickMils(code) {
  return /^(5\d{5}\.SH|1[5-8]\d{4}\.SZ)$/.test(code) ? 1 : 10
}

/**
 * A limit price at or above the market: the reference price plus the
 * slippage, rounded up to the tick (computed in mils so no float drifts).
 * @param {Gateway} gw
 */
async function marketableLimit(gw) {
  let reference = settings.price
  if (reference === undefined) {
    const held = (await gw.positions()).find((p) => p.stock_code === settings.stock_code)
    if (held && held.last_price > 0) reference = held.last_price
  }
  if (reference === undefined || !(reference > 0)) {
    throw new Failure(
      `no price for ${settings.stock_code}: the account holds none of it and the gateway ` +
        "serves no quotes yet; set QMTBUS_PRICE to the current price",
      64,
    )
  }
  const tick = tickMils(settings.stock_code)
  const mils = Math.ceil((Math.round(reference * 1000) * (100 + settings.slippagePct)) / 100 / tick) * tick
  return mils / 1000
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
  try {
    // Subscribe first, so the order's events cannot slip past before we listen.
    await stream.ready()
    const price = await marketableLimit(gw)
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
      volume,
      price: Math.round((amount / volume) * 1000) / 1000,
      traded_ids: trades.map((t) => t.traded_id),
      ts: String(order.ts), // nanoseconds; a BigInt in the library
    }
    console.log(JSON.stringify(fill))
  } finally {
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
