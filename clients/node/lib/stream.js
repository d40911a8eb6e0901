// EventStream: the gateway's events in seq order over SUB, holes filled with
// `replay`, silence and unrecoverable loss reported instead of hidden.

import * as zmq from "zeromq"

import { applyCurve, decodePayload, topicOf } from "./codec.js"
import { EventsLost, GatewaySilent, QmtbusError } from "./errors.js"
import { DEFAULT_COMMANDS_ADDRESS, Gateway, isTimeout } from "./gateway.js"

export const DEFAULT_EVENTS_ADDRESS = "tcp://127.0.0.1:7101"

/**
 * @typedef {object} EventStreamOptions
 * @property {string} [eventsAddress] the gateway's PUB address; default tcp://127.0.0.1:7101
 * @property {string} [commandsAddress] for `replay`; default tcp://127.0.0.1:7102
 * @property {Gateway} [gateway] use this client for `replay` instead of opening one
 * @property {string[]} [prefixes] topic prefixes to hand out, e.g. ["order.", "trade.",
 *   "trade.SIM0001"]; a prefix without a dot is a type name and gets one ("order" →
 *   "order.", never order_error); empty or absent: every event
 * @property {number} [silenceMs] throw GatewaySilent after this long with nothing received; default 5000
 * @property {{epoch: string, seq: number}} [since] resume after this event (replays what came after it)
 * @property {import("./codec.js").CurveOptions} [curve] CURVE keys, when the gateway is not on loopback
 */

/**
 * The gateway's events, in `seq` order, none lost.
 *
 * The stream receives every event (it must see every `seq` to notice a
 * hole) and hands out those whose topic starts with one of `prefixes`. A
 * hole in `seq`, a heartbeat whose `last_seq` is ahead, or a new epoch is
 * filled with `replay`; what cannot be filled surfaces as an EventsLost
 * error at the place of the hole. Nothing received for `silenceMs`
 * (heartbeats come every second) surfaces as GatewaySilent. After either
 * error the stream stays usable: iterate again to go on.
 *
 *     const stream = new EventStream({ prefixes: ["trade."] })
 *     await stream.ready()
 *     for await (const event of stream) console.log(event.traded_volume)
 */
export class EventStream {
  /** @param {EventStreamOptions} [options] */
  constructor(options = {}) {
    this.eventsAddress = options.eventsAddress ?? DEFAULT_EVENTS_ADDRESS
    // "trade" means the trade events: "trade." (without the dot, "order" would
    // also match order_error and order_response).
    this.prefixes = (options.prefixes ?? []).map((p) => (p.includes(".") ? p : `${p}.`))
    this.silenceMs = options.silenceMs ?? 5000
    this._ownGateway = options.gateway === undefined
    this.gateway =
      options.gateway ??
      new Gateway({ address: options.commandsAddress ?? DEFAULT_COMMANDS_ADDRESS, curve: options.curve })
    /** Epoch of the last event handed on or skipped. @type {string | null} */
    this.epoch = options.since?.epoch ?? null
    /** Seq of the last event seen in `epoch` (delivered, filtered out, or replayed). */
    this.lastSeq = options.since?.seq ?? 0
    /** @type {Array<Record<string, any> | Error>} */
    this._pending = []
    this._closed = false
    this._seenLive = false
    this._socket = new zmq.Subscriber({ linger: 0, receiveTimeout: this.silenceMs })
    applyCurve(this._socket, options.curve)
    this._socket.subscribe()
    this._socket.connect(this.eventsAddress)
  }

  /** Where the stream is: pass as `since` to a new stream to resume after it. */
  get position() {
    return { epoch: this.epoch ?? "", seq: this.lastSeq }
  }

  /**
   * Resolve once the subscription is live (the first event, a heartbeat at
   * the latest, has arrived), so nothing published after this is missed.
   * Call it before placing orders whose events you wait for.
   * @param {number} [timeoutMs] default `silenceMs`
   */
  async ready(timeoutMs = this.silenceMs) {
    if (this._seenLive) return
    await this._receive(timeoutMs)
  }

  /**
   * The next event that matches the prefixes.
   * @returns {Promise<Record<string, any>>}
   */
  async next() {
    for (;;) {
      const item = this._pending.shift()
      if (item instanceof Error) throw item
      if (item !== undefined) return item
      await this._receive(this.silenceMs)
    }
  }

  /** Receive one message and queue what it brings (it and any replayed events). */
  async _receive(/** @type {number} */ timeoutMs) {
    if (this._closed) throw new Error("this EventStream is closed")
    this._socket.receiveTimeout = timeoutMs
    let frames
    try {
      frames = await this._socket.receive()
    } catch (err) {
      if (isTimeout(err)) throw new GatewaySilent(this.eventsAddress, timeoutMs)
      throw err
    }
    this._seenLive = true
    const payload = frames[frames.length - 1]
    let event
    try {
      event = decodePayload(payload)
    } catch {
      return // not ours to crash on: a publisher bug must not stop a strategy
    }
    await this._accept(event)
  }

  /** @param {Record<string, any>} event */
  async _accept(event) {
    const epoch = String(event.epoch ?? "")
    const seq = Number(event.seq ?? 0)
    if (event.type === "heartbeat") {
      // `last_seq` is the newest event before this heartbeat: a hole at the
      // tail shows here even when no later event comes.
      const tail = Number(event.last_seq ?? 0)
      this._locate(epoch, tail)
      if (epoch !== this.epoch) await this._changeEpoch(epoch)
      if (tail > this.lastSeq) await this._fill(tail)
      const sequenced = seq > tail
      if (!sequenced) this._offer(event)
      else if (seq > this.lastSeq) {
        this.lastSeq = seq
        this._offer(event)
      }
      return
    }
    this._locate(epoch, seq - 1)
    if (epoch !== this.epoch) await this._changeEpoch(epoch)
    if (seq - 1 > this.lastSeq) await this._fill(seq - 1)
    if (seq > this.lastSeq) {
      this.lastSeq = seq
      this._offer(event)
    }
  }

  /** On first sight of the bus (no `since`), start right here. @param {string} epoch @param {number} before */
  _locate(epoch, before) {
    if (this.epoch === null) {
      this.epoch = epoch
      this.lastSeq = before
    }
  }

  /**
   * The gateway restarted: fetch what is left of the old epoch, then start
   * the new one from seq 1.
   * @param {string} epoch
   */
  async _changeEpoch(epoch) {
    const old = /** @type {string} */ (this.epoch)
    try {
      await this._replayFrom(old, Number.POSITIVE_INFINITY)
    } catch (err) {
      const why = err instanceof QmtbusError ? err.message : `replay failed: ${err}`
      this._pending.push(new EventsLost(old, this.lastSeq + 1, Number.POSITIVE_INFINITY, why))
    }
    this.epoch = epoch
    this.lastSeq = 0
  }

  /** Replay this epoch up to `upTo` (inclusive); report what stays missing. @param {number} upTo */
  async _fill(upTo) {
    const epoch = /** @type {string} */ (this.epoch)
    const from = this.lastSeq + 1
    try {
      await this._replayFrom(epoch, upTo)
    } catch (err) {
      const why = err instanceof QmtbusError ? err.message : `replay failed: ${err}`
      this._pending.push(new EventsLost(epoch, this.lastSeq + 1, upTo, why))
      this.lastSeq = upTo
      return
    }
    if (this.lastSeq < upTo) {
      this._pending.push(
        new EventsLost(epoch, Math.max(from, this.lastSeq + 1), upTo, "the gateway's replay stopped short"),
      )
      this.lastSeq = upTo
    }
  }

  /** @param {string} epoch @param {number} upTo */
  async _replayFrom(epoch, upTo) {
    while (this.lastSeq < upTo) {
      const reply = await this.gateway.replay(epoch, this.lastSeq + 1, 1000)
      const events = /** @type {Record<string, any>[]} */ (reply.events ?? [])
      for (const event of events) {
        const seq = Number(event.seq ?? 0)
        if (seq > this.lastSeq) {
          this.lastSeq = seq
          this._offer(event)
        }
      }
      if (!reply.more || events.length === 0) return
    }
  }

  /** @param {Record<string, any>} event */
  _offer(event) {
    if (this.prefixes.length === 0) {
      this._pending.push(event)
      return
    }
    const topic = topicOf(event)
    if (this.prefixes.some((prefix) => topic.startsWith(prefix))) this._pending.push(event)
  }

  /** @returns {AsyncIterator<Record<string, any>>} */
  [Symbol.asyncIterator]() {
    return {
      next: async () =>
        this._closed ? { done: true, value: undefined } : { done: false, value: await this.next() },
      // Leaving a for-await loop keeps the stream open: iterate again, or close().
      return: async () => ({ done: true, value: undefined }),
    }
  }

  /** Close the SUB socket (and the replay client, if the stream opened it). */
  close() {
    if (this._closed) return
    this._closed = true
    this._socket.close()
    if (this._ownGateway) this.gateway.close()
  }
}
