// Unit tests of the Node client against a fake gateway made of real ZeroMQ
// sockets on loopback (ROUTER for commands, PUB for events). The end-to-end
// test against the real gateway is tests/clients/test_node.py.

import assert from "node:assert/strict"
import { createServer } from "node:net"
import { after, describe, test } from "node:test"
import { Worker } from "node:worker_threads"

import { decode, encode } from "@msgpack/msgpack"
import * as zmq from "zeromq"

import {
  EventStream,
  EventsLost,
  Gateway,
  GatewaySilent,
  GatewayUnreachable,
  QmtbusError,
  QuoteStream,
  RiskDenied,
  decodePayload,
  encodeCommand,
  newClientOrderId,
  topicOf,
  tsToDate,
} from "../qmtbus.js"

const EPOCH = "20261124T041732Z-3fa9c1"
const ACCOUNT = "SIM0001"

/** A free loopback TCP port. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = /** @type {import("node:net").AddressInfo} */ (server.address())
      server.close(() => resolve(port))
    })
  })
}

/** @param {Record<string, unknown>} value */
const pack = (value) => encode(value, { useBigInt64: true })

/**
 * A fake command server: `handler(request)` returns the reply map, or
 * undefined to stay silent (the client then times out); on `address` (a restart) or a
 * free port.
 * @param {(request: any, n: number) => Record<string, unknown> | undefined} handler
 * @param {string} [address]
 */
async function fakeCommands(handler, address = undefined) {
  address ??= `tcp://127.0.0.1:${await freePort()}`
  const sock = new zmq.Router({ linger: 0 })
  await sock.bind(address)
  /** @type {any[]} */
  const received = []
  const loop = (async () => {
    for await (const [identity, empty, payload] of sock) {
      const request = decode(payload, { useBigInt64: true })
      received.push(request)
      const reply = handler(request, received.length)
      if (reply !== undefined) await sock.send([identity, empty, pack(reply)])
    }
  })().catch(() => undefined)
  return {
    address,
    received,
    close: async () => {
      sock.close()
      await loop
    },
  }
}

/** Poll `predicate` until it is true; fail after `timeoutMs`. @param {() => boolean} predicate */
async function waitFor(predicate, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error("timed out waiting for a condition")
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/**
 * A gateway on another thread that answers the first request and exits at once,
 * setting `flag[0]` to 1 once its socket is closed (the reply flushed first).
 * @param {string} address @param {Int32Array} flag
 */
function answerAndExitOnAnotherThread(address, flag) {
  const code = `
    const { workerData } = require("node:worker_threads")
    const zmq = require(workerData.zeromq)
    const { encode } = require(workerData.msgpack)
    ;(async () => {
      const sock = new zmq.Router({ linger: 2000 })
      await sock.bind(workerData.address)
      const [identity, empty] = await sock.receive()
      await sock.send([identity, empty, encode({ type: "note_ack", seq: 9 })])
      sock.close()
      zmq.context.close?.()
      Atomics.store(workerData.flag, 0, 1)
      Atomics.notify(workerData.flag, 0)
    })()
  `
  const resolve = (/** @type {string} */ name) => import.meta.resolve(name).replace("file://", "")
  return new Worker(code, {
    eval: true,
    workerData: { address, flag, zeromq: resolve("zeromq"), msgpack: resolve("@msgpack/msgpack") },
  })
}

/** A fake event publisher with seq bookkeeping. */
async function fakeEvents() {
  const address = `tcp://127.0.0.1:${await freePort()}`
  const sock = new zmq.Publisher({ linger: 0 })
  await sock.bind(address)
  return {
    address,
    /** @param {Record<string, unknown>} event */
    publish: (event) => sock.send([topicOf(/** @type {any} */ (event)), pack(event)]),
    close: () => sock.close(),
  }
}

/** @param {string} type @param {number} seq @param {Record<string, unknown>} [fields] @param {string} [epoch] */
function event(type, seq, fields = {}, epoch = EPOCH) {
  return { type, epoch, seq, ts: 1795494449419095685n + BigInt(seq), account_id: ACCOUNT, ...fields }
}

/**
 * Publish heartbeats until the stream's subscription is live, the way a real
 * gateway does every second (here every 20 ms).
 * @param {EventStream} stream @param {{publish: Function}} pub @param {number} lastSeq
 */
async function connectStream(stream, pub, lastSeq) {
  const timer = setInterval(
    () => pub.publish({ ...event("heartbeat", 0, { last_seq: lastSeq, state: "ready" }) }),
    20,
  )
  try {
    await stream.ready(3000)
  } finally {
    clearInterval(timer)
  }
  // Drop the heartbeats queued while connecting.
  while (stream._pending.length > 0 && /** @type {any} */ (stream._pending[0]).type === "heartbeat") {
    stream._pending.shift()
  }
}

describe("codec", () => {
  test("given an int64 ts then it decodes as an exact BigInt", () => {
    const ts = 1795494449419095685n
    const decoded = decodePayload(pack({ type: "trade", ts, seq: 7, traded_price: 10.5 }))
    assert.equal(decoded.ts, ts)
    assert.equal(decoded.seq, 7)
    assert.equal(decoded.traded_price, 10.5)
    assert.equal(tsToDate(ts).getTime(), 1795494449419)
  })

  test("given a small ts then it is still a BigInt, and huge integers are never rounded", () => {
    const decoded = decodePayload(pack({ type: "x", ts: 0, big: 2n ** 60n + 1n, ok: 2 ** 40 }))
    assert.equal(decoded.ts, 0n)
    assert.equal(decoded.big, 2n ** 60n + 1n)
    assert.equal(decoded.ok, 2 ** 40)
  })

  test("given a JSON reply then ts stays exact", () => {
    const decoded = decodePayload(Buffer.from('{"type":"note","ts":1795494449419095685,"n":3}'))
    assert.equal(decoded.ts, 1795494449419095685n)
    assert.equal(decoded.n, 3)
  })

  test("given nested events in a replay reply then their ts are BigInt too", () => {
    const decoded = decodePayload(pack({ type: "replay", events: [event("order", 1)] }))
    assert.equal(typeof decoded.events[0].ts, "bigint")
  })

  test("given a command without a type then encoding refuses it", () => {
    assert.throws(() => encodeCommand(/** @type {any} */ ({ stock_code: "600000.SH" })), TypeError)
  })

  test("generated client_order_ids are 1-24 printable ASCII and unique", () => {
    const ids = new Set(Array.from({ length: 2000 }, () => newClientOrderId()))
    assert.equal(ids.size, 2000)
    for (const id of ids) assert.match(id, /^[\x21-\x7e]{1,24}$/)
    assert.match(newClientOrderId("mom"), /^mom[\x21-\x7e]{1,21}$/)
    assert.throws(() => newClientOrderId("toolong"), RangeError)
  })
})

describe("Gateway", () => {
  /** @type {Array<() => unknown>} */
  const cleanups = []
  after(async () => {
    for (const cleanup of cleanups) await cleanup()
  })

  test("given an error reply then request throws QmtbusError with code, message and rule", async () => {
    const server = await fakeCommands(() => ({
      type: "error",
      code: "RISK_DENIED",
      message: "price 99.00 is 880% above last 10.10",
      rule: "fat_finger",
    }))
    const gw = new Gateway({ address: server.address, timeoutMs: 2000 })
    cleanups.push(() => gw.close(), server.close)
    await assert.rejects(gw.buy("600000.SH", 100, 99), (err) => {
      assert.ok(err instanceof QmtbusError)
      assert.equal(err.code, "RISK_DENIED")
      assert.equal(err.rule, "fat_finger")
      assert.ok(err instanceof RiskDenied)
      assert.equal(err.message, "price 99.00 is 880% above last 10.10")
      return true
    })
  })

  test("given a lost reply then the order is resent on a fresh socket with the same client_order_id", async () => {
    const server = await fakeCommands((request, n) =>
      n === 1
        ? undefined
        : { type: "order_ack", client_order_id: request.client_order_id, order_id: 7, duplicate: true },
    )
    const gw = new Gateway({ address: server.address, timeoutMs: 200, retries: 2 })
    cleanups.push(() => gw.close(), server.close)
    const ack = await gw.buy("600000.SH", 100, 10.0, { strategy_name: "t" })
    assert.equal(server.received.length, 2)
    const [first, second] = server.received
    assert.equal(first.client_order_id, second.client_order_id)
    assert.deepEqual(first, second)
    assert.equal(ack.client_order_id, first.client_order_id)
    assert.equal(ack.duplicate, true)
    assert.equal(first.order_type, 23)
    assert.equal(first.price_type, 11)
    // The socket works again for the next request.
    assert.equal((await gw.request({ type: "ping" })).type, "order_ack")
  })

  test("given no gateway then GatewayUnreachable after every retry", async () => {
    const gw = new Gateway({ address: `tcp://127.0.0.1:${await freePort()}`, timeoutMs: 100, retries: 2 })
    cleanups.push(() => gw.close())
    const started = Date.now()
    await assert.rejects(gw.status(), (err) => {
      assert.ok(err instanceof GatewayUnreachable)
      assert.match(err.message, /^gateway not reachable at tcp:\/\/127\.0\.0\.1:\d+ — is it running\?$/)
      assert.equal(err.sent, false)
      return true
    })
    assert.ok(Date.now() - started < 2000)
  })

  test("given a note whose reply is lost then it is not resent, and the error says why", async () => {
    const server = await fakeCommands(() => undefined)
    const gw = new Gateway({ address: server.address, timeoutMs: 150, retries: 3 })
    cleanups.push(() => gw.close(), server.close)
    await assert.rejects(gw.note("signal", { x: 1 }), (err) => {
      assert.ok(err instanceof GatewayUnreachable)
      assert.equal(err.sent, true)
      assert.match(err.message, /the note command may or may not have taken effect, so it was not resent/)
      return true
    })
    assert.equal(server.received.length, 1)
  })

  test("given a reply of the wrong kind then BadReply", async () => {
    const server = await fakeCommands(() => ({ type: "pong" }))
    const gw = new Gateway({ address: server.address })
    cleanups.push(() => gw.close(), server.close)
    await assert.rejects(gw.asset(), (err) => err instanceof QmtbusError && err.code === "BAD_REPLY")
  })

  test("concurrent requests are answered in turn, each with its own reply", async () => {
    const server = await fakeCommands((request) => ({ type: "note_ack", seq: request.data.i }))
    const gw = new Gateway({ address: server.address })
    cleanups.push(() => gw.close(), server.close)
    const seqs = await Promise.all([1, 2, 3, 4, 5].map((i) => gw.note("signal", { i })))
    assert.deepEqual(seqs, [1, 2, 3, 4, 5])
  })

  test("given the gateway answers and exits before the client reads then the reply is kept", async () => {
    const address = `tcp://127.0.0.1:${await freePort()}`
    const flag = new Int32Array(new SharedArrayBuffer(4))
    const worker = answerAndExitOnAnotherThread(address, flag)
    const gw = new Gateway({ address, timeoutMs: 5000, retries: 0 })
    cleanups.push(() => gw.close(), () => worker.terminate())
    await waitFor(() => gw._open() !== null && gw._link?.up === true)
    const note = gw.note("signal", { x: 1 })
    await new Promise((resolve) => setImmediate(resolve)) // the request is in the socket
    // This thread is busy (it cannot read) until the gateway has answered and exited,
    // and 100 ms more: long enough for libzmq to see the connection go.
    assert.notEqual(Atomics.wait(flag, 0, 0, 10_000), "timed-out", "the gateway did not answer")
    Atomics.wait(flag, 0, 1, 100)
    assert.equal(await note, 9)
  })

  test("given the gateway restarted between two requests then the same socket gets through", async () => {
    const first = await fakeCommands(() => ({ type: "pong" }))
    const gw = new Gateway({ address: first.address, timeoutMs: 5000, retries: 0 })
    cleanups.push(() => gw.close())
    assert.equal((await gw.ping()).type, "pong")
    const sock = gw._socket
    await first.close()
    await waitFor(() => gw._link?.up === false)
    // sent while the gateway is down: it waits in the socket and goes out on reconnect
    const note = gw.note("signal", { x: 1 })
    const restarted = await fakeCommands(() => ({ type: "note_ack", seq: 1 }), first.address)
    cleanups.push(restarted.close)
    assert.equal(await note, 1)
    assert.equal(gw._socket, sock)
    assert.equal(restarted.received.length, 1)
  })

  test("given a note that waited for the restarted gateway, which stays silent, then it counts as sent", async () => {
    const first = await fakeCommands(() => ({ type: "pong" }))
    const gw = new Gateway({ address: first.address, timeoutMs: 1000, retries: 3 })
    cleanups.push(() => gw.close())
    await gw.ping()
    await first.close()
    await waitFor(() => gw._link?.up === false)
    const note = gw.note("signal", { x: 1 })
    const restarted = await fakeCommands(() => undefined, first.address)
    cleanups.push(restarted.close)
    await assert.rejects(note, (err) => {
      assert.ok(err instanceof GatewayUnreachable)
      assert.equal(err.sent, true)
      assert.match(err.message, /not resent/)
      return true
    })
    assert.equal(restarted.received.length, 1)
  })

  test("cancel takes an order_id number or a client_order_id string", async () => {
    const server = await fakeCommands((request) => ({ order_id: 1, ...request, type: "cancel_ack" }))
    const gw = new Gateway({ address: server.address })
    cleanups.push(() => gw.close(), server.close)
    await gw.cancel(12)
    await gw.cancel("js-abc")
    assert.deepEqual(server.received[0], { type: "cancel", order_id: 12 })
    assert.deepEqual(server.received[1], { type: "cancel", client_order_id: "js-abc" })
  })
})

describe("bars and instrument detail", () => {
  /** @type {Array<() => unknown>} */
  const cleanups = []
  after(async () => {
    for (const cleanup of cleanups) await cleanup()
  })

  test("queryBars sends the period and count and returns the bars; queryInstrument the detail", async () => {
    const bar = { time: 1764864000000, open: 10, high: 10.2, low: 9.8, close: 10.1, volume: 300, amount: 3030, preClose: 9.9 }
    const commands = await fakeCommands((request) => {
      if (request.type === "query_bars") {
        if (request.stock_code === "000001.SH") {
          return { type: "error", code: "NOT_FOUND", message: "no market data for 000001.SH: the broker does not know it" }
        }
        return { type: "bars", stock_code: request.stock_code, period: request.period, bars: [bar] }
      }
      return { type: "instrument", stock_code: request.stock_code, InstrumentName: "Sim 600000", PreClose: 9.9 }
    })
    const gw = new Gateway({ address: commands.address })
    cleanups.push(() => gw.close(), commands.close)
    assert.deepEqual(await gw.queryBars("600000.SH", { period: "1m", count: 5 }), [bar])
    assert.deepEqual(commands.received[0], { type: "query_bars", stock_code: "600000.SH", period: "1m", count: 5 })
    await gw.queryBars("600000.SH")
    assert.deepEqual(commands.received[1], { type: "query_bars", stock_code: "600000.SH", period: "1d", count: 20 })
    await gw.queryBars("600000.SH", { start_time: 1764864000000 })
    assert.equal(commands.received[2].start_time, 1764864000000)
    const detail = await gw.queryInstrument("600000.SH")
    assert.equal(detail.InstrumentName, "Sim 600000")
    assert.equal(detail.PreClose, 9.9)
    await assert.rejects(gw.queryBars("000001.SH"), (err) => {
      assert.ok(err instanceof QmtbusError)
      assert.equal(err.code, "NOT_FOUND")
      return true
    })
  })
})

describe("EventStream", () => {
  /** @type {Array<() => unknown>} */
  const cleanups = []
  after(async () => {
    for (const cleanup of cleanups) await cleanup()
  })

  /**
   * @param {any[]} journal every event the fake gateway has published
   * @param {string[]} prefixes
   */
  async function setUp(journal, prefixes, silenceMs = 3000) {
    const commands = await fakeCommands((request) => {
      if (request.type !== "replay") return { type: "error", code: "UNKNOWN_TYPE", message: "?" }
      const held = journal.filter((e) => e.epoch === request.epoch)
      // Like gateway/journal.py: NOT_FOUND for an unknown epoch or a trimmed
      // seq, an empty list past the end.
      const first = held.length ? held[0].seq : 1
      const last = held.length ? held[held.length - 1].seq : 0
      if (held.length === 0 || request.from_seq < first) {
        return { type: "error", code: "NOT_FOUND", message: `seq ${request.from_seq} of ${request.epoch} is not held` }
      }
      const events = held.filter((e) => e.seq >= request.from_seq).slice(0, request.limit)
      return { type: "replay", epoch: request.epoch, events, last_seq: last, more: false }
    })
    const pub = await fakeEvents()
    const stream = new EventStream({
      eventsAddress: pub.address,
      commandsAddress: commands.address,
      prefixes,
      silenceMs,
    })
    cleanups.push(() => stream.close(), () => pub.close(), commands.close)
    return { commands, pub, stream }
  }

  /** @param {EventStream} stream @param {number} n */
  async function take(stream, n) {
    const out = []
    for await (const e of stream) {
      out.push(e)
      if (out.length === n) break
    }
    return out
  }

  test("given a seq hole then the missing events are replayed in order", async () => {
    const journal = [1, 2, 3, 4, 5].map((seq) => event(seq === 3 ? "order_error" : "order", seq))
    const { commands, pub, stream } = await setUp(journal, ["order"]) // the dot is added
    await connectStream(stream, pub, 0)
    await pub.publish(journal[0])
    await pub.publish(journal[1])
    await pub.publish(journal[4]) // 3 and 4 never arrive live
    const got = await take(stream, 4)
    assert.deepEqual(
      got.map((e) => e.seq),
      [1, 2, 4, 5],
    )
    assert.ok(got.every((e) => e.type === "order"), "the prefix 'order' must not let order_error through")
    assert.equal(commands.received.filter((r) => r.type === "replay").length, 1)
    assert.deepEqual(stream.position, { epoch: EPOCH, seq: 5 })
  })

  test("given a heartbeat whose last_seq is ahead then the tail is replayed", async () => {
    const journal = [event("trade", 1, { traded_volume: 100 }), event("trade", 2, { traded_volume: 200 })]
    const { pub, stream } = await setUp(journal, ["trade."])
    await connectStream(stream, pub, 0)
    await pub.publish(event("heartbeat", 0, { last_seq: 2 }))
    const got = await take(stream, 2)
    assert.deepEqual(
      got.map((e) => e.traded_volume),
      [100, 200],
    )
  })

  test("given a hole the gateway no longer holds then EventsLost, and the stream goes on", async () => {
    const journal = [event("order", 5)] // 1..4 already trimmed
    const { pub, stream } = await setUp(journal, ["order."])
    await connectStream(stream, pub, 1)
    await pub.publish(event("order", 5))
    await assert.rejects(stream.next(), (err) => {
      assert.ok(err instanceof EventsLost)
      assert.equal(err.from_seq, 2)
      assert.equal(err.to_seq, 4)
      return true
    })
    assert.equal((await stream.next()).seq, 5)
  })

  test("given a new epoch then the old tail comes first, then the new epoch from seq 1", async () => {
    const next = "20261124T050000Z-000001"
    const journal = [event("order", 1), event("order", 2), event("gateway", 1, {}, next), event("order", 2, {}, next)]
    const { pub, stream } = await setUp(journal, ["order.", "gateway."])
    await connectStream(stream, pub, 0)
    await pub.publish(journal[0])
    await pub.publish(journal[3]) // the restart: old seq 2 and new seq 1 missed live
    const got = await take(stream, 4)
    assert.deepEqual(
      got.map((e) => `${e.epoch === EPOCH ? "old" : "new"}:${e.type}:${e.seq}`),
      ["old:order:1", "old:order:2", "new:gateway:1", "new:order:2"],
    )
  })

  test("given a resume point then events after it are replayed before live ones", async () => {
    const journal = [1, 2, 3].map((seq) => event("trade", seq))
    const commands = await fakeCommands((request) => ({
      type: "replay",
      epoch: EPOCH,
      events: journal.filter((e) => e.seq >= request.from_seq),
      last_seq: 3,
      more: false,
    }))
    const pub = await fakeEvents()
    const stream = new EventStream({
      eventsAddress: pub.address,
      commandsAddress: commands.address,
      since: { epoch: EPOCH, seq: 1 },
    })
    cleanups.push(() => stream.close(), () => pub.close(), commands.close)
    await connectStream(stream, pub, 3)
    const got = await take(stream, 2)
    assert.deepEqual(
      got.map((e) => e.seq),
      [2, 3],
    )
  })

  test("given a silent gateway then GatewaySilent instead of waiting forever", async () => {
    const { stream } = await setUp([], [], 200)
    await assert.rejects(stream.next(), GatewaySilent)
  })
})

describe("QuoteStream", () => {
  /** @type {Array<() => unknown>} */
  const cleanups = []
  after(async () => {
    for (const cleanup of cleanups) await cleanup()
  })

  /** A fake quotes PUB: ticks under "tick.<stock_code>", as the gateway publishes them. */
  async function fakeQuotes() {
    const address = `tcp://127.0.0.1:${await freePort()}`
    const sock = new zmq.Publisher({ linger: 0 })
    await sock.bind(address)
    let seq = 0
    return {
      address,
      /** @param {string} code @param {number} lastPrice */
      publish: (code, lastPrice) =>
        sock.send([
          `tick.${code}`,
          pack({ ...event("tick", ++seq), stock_code: code, lastPrice, askPrice: [lastPrice, 0, 0, 0, 0] }),
        ]),
      close: () => sock.close(),
    }
  }

  /** Commands: subscribe/unsubscribe answered with `lease`, query_quote with one tick. */
  async function quoteCommands(lease = 300) {
    return fakeCommands((request) => {
      if (request.type === "query_quote") {
        if (request.stock_codes.includes("000001.SH")) {
          return { type: "error", code: "NOT_FOUND", message: "no quote for 000001.SH: the broker does not know it" }
        }
        return { type: "quotes", quotes: request.stock_codes.map((/** @type {string} */ c) => ({ ...event("tick", 0), stock_code: c, lastPrice: 9.5 })) }
      }
      const held = request.type === "subscribe_quotes" ? request.stock_codes : []
      return { type: "quotes_ack", stock_codes: held, subscribed: held, quote_lease: lease }
    })
  }

  /**
   * Publish ticks of both codes every 10 ms until the stream hands out `n` ticks.
   * @param {QuoteStream} stream @param {{publish: Function}} pub @param {number} n
   */
  async function collect(stream, pub, n) {
    let price = 10
    const timer = setInterval(() => {
      price += 0.01
      pub.publish("600000.SH", price)
      pub.publish("000001.SZ", price)
    }, 10)
    try {
      const out = []
      for await (const tick of stream) {
        out.push(tick)
        if (out.length === n) return out
      }
      return out
    } finally {
      clearInterval(timer)
    }
  }

  test("given codes then it holds them under its client_id and hands out only their ticks", async () => {
    const commands = await quoteCommands()
    const pub = await fakeQuotes()
    const stream = new QuoteStream({ quotesAddress: pub.address, commandsAddress: commands.address, codes: ["600000.SH"] })
    cleanups.push(() => stream.close(), () => pub.close(), commands.close)
    await stream.ready()
    const got = await collect(stream, pub, 5)
    assert.ok(got.every((t) => t.type === "tick" && t.stock_code === "600000.SH"))
    assert.ok(got.every((t, i) => i === 0 || t.seq > got[i - 1].seq), "seq jumps over other codes, in order")
    assert.equal(stream.latest("600000.SH"), got[4])
    const [subscribe] = commands.received
    assert.equal(subscribe.type, "subscribe_quotes")
    assert.deepEqual(subscribe.stock_codes, ["600000.SH"])
    assert.match(subscribe.client_id, /^node-[0-9a-f]{12}$/)
  })

  test("given a short lease then the stream renews its holding well within it", async () => {
    const commands = await quoteCommands(0.3)
    const stream = new QuoteStream({ commandsAddress: commands.address, codes: ["600000.SH"], clientId: "mine" })
    cleanups.push(() => stream.close(), commands.close)
    await stream.ready()
    await new Promise((resolve) => setTimeout(resolve, 450))
    const renewals = commands.received.filter((r) => r.type === "subscribe_quotes")
    assert.ok(renewals.length >= 3, `renewed ${renewals.length - 1} times in 0.45 s of a 0.3 s lease`)
    assert.ok(renewals.every((r) => r.client_id === "mine"))
  })

  test("given no tick for silenceMs then it subscribes again instead of failing", async () => {
    const commands = await quoteCommands()
    const pub = await fakeQuotes()
    const stream = new QuoteStream({
      quotesAddress: pub.address,
      commandsAddress: commands.address,
      codes: ["600000.SH"],
      silenceMs: 100,
    })
    cleanups.push(() => stream.close(), () => pub.close(), commands.close)
    const next = stream.next()
    const started = Date.now()
    while (commands.received.filter((r) => r.type === "subscribe_quotes").length < 2) {
      assert.ok(Date.now() - started < 3000, "no second subscribe_quotes after the silence")
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    const timer = setInterval(() => pub.publish("600000.SH", 10), 10)
    try {
      assert.equal((await next).stock_code, "600000.SH")
    } finally {
      clearInterval(timer)
    }
  })

  test("closing releases the codes at the gateway", async () => {
    const commands = await quoteCommands()
    const stream = new QuoteStream({ commandsAddress: commands.address, codes: ["600000.SH"], clientId: "bye" })
    cleanups.push(commands.close)
    await stream.ready()
    await stream.close()
    const last = commands.received[commands.received.length - 1]
    assert.deepEqual(last, { type: "unsubscribe_quotes", stock_codes: ["600000.SH"], client_id: "bye" })
  })

  test("queryQuote returns the ticks, and NOT_FOUND names an unknown code", async () => {
    const commands = await quoteCommands()
    const gw = new Gateway({ address: commands.address })
    cleanups.push(() => gw.close(), commands.close)
    const [quote] = await gw.queryQuote("600000.SH")
    assert.equal(quote.stock_code, "600000.SH")
    assert.equal(quote.lastPrice, 9.5)
    await assert.rejects(gw.queryQuote(["600000.SH", "000001.SH"]), (err) => {
      assert.ok(err instanceof QmtbusError)
      assert.equal(err.code, "NOT_FOUND")
      assert.match(err.message, /000001\.SH/)
      return true
    })
  })
})
