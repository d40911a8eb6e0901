#!/usr/bin/env node
// Tick figures for bench/bench_quotes.py, printed as one JSON line.
//
//   latency:   read QMTBUS_COUNT ticks of QMTBUS_CODES (after one second of warm-up);
//              per tick, the wall-clock time it arrived here minus its `ts` (stamped
//              when the gateway got it)
//   roundtrip: on each of QMTBUS_COUNT ticks, place a resting limit buy (2% under
//              the tick's price) and time tick `ts` -> order_ack received
//
//   QMTBUS_COMMANDS, QMTBUS_QUOTES  gateway addresses
//   QMTBUS_MODE  latency | roundtrip    QMTBUS_CODES  comma-separated    QMTBUS_COUNT

import { performance } from "node:perf_hooks"

import { Gateway, QuoteStream } from "../qmtbus.js"

const env = process.env
const mode = env.QMTBUS_MODE || "latency"
const codes = (env.QMTBUS_CODES || "600000.SH").split(",")
const count = Number(env.QMTBUS_COUNT || 1000)

/** Wall-clock nanoseconds, at microsecond resolution. */
const nowNs = () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6))

const gw = new Gateway({ address: env.QMTBUS_COMMANDS, timeoutMs: 10_000 })
const quotes = new QuoteStream({ quotesAddress: env.QMTBUS_QUOTES, gateway: gw, codes, clientId: "bench-node" })
/** @type {number[]} */
const micros = []
try {
  await quotes.ready()
  let n = 0
  let busyUntil = 0n
  /** @type {bigint | null} */
  let warm = null
  for await (const tick of quotes) {
    if (mode === "latency") {
      const now = nowNs()
      warm ??= now + 1_000_000_000n
      if (now < warm) continue // the JIT and the socket settle first
      micros.push(Number(now - tick.ts) / 1000)
    } else {
      // Act only on ticks that came after the last order was answered, as a
      // strategy reading the newest price would (older ones queued meanwhile).
      if (tick.ts < busyUntil) continue
      const price = Math.round(tick.lastPrice * 98) / 100
      const ack = await gw.buy(tick.stock_code, 100, price, { strategy_name: "bench-node" })
      busyUntil = nowNs()
      micros.push(Number(busyUntil - tick.ts) / 1000)
      if (ack.status !== "accepted") throw new Error(`order not accepted: ${JSON.stringify(ack)}`)
    }
    if (++n >= count) break
  }
  console.log(JSON.stringify({ mode, micros }))
} catch (err) {
  console.error(`error: ${err instanceof Error ? `${err.name} ${err.message}` : err}`)
  process.exitCode = 1
} finally {
  await quotes.close()
  gw.close()
}
