// What the client raises: the gateway's error replies, an unreachable or
// silent gateway, and events that could not be recovered.

/**
 * The gateway answered with an `error` reply. `code` is the protocol's
 * UPPER_SNAKE code (BAD_REQUEST, UNKNOWN_TYPE, NOT_CONNECTED, RISK_DENIED,
 * BROKER_ERROR, NOT_FOUND, ...; codes this version does not know are kept),
 * `message` the gateway's sentence, `rule` the risk rule that denied an order.
 */
export class QmtbusError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {string} [rule]
   */
  constructor(code, message, rule = "") {
    super(message)
    this.name = "QmtbusError"
    this.code = code
    this.rule = rule
  }

  toString() {
    return `${this.name} ${this.code}: ${this.message}${this.rule ? ` (rule ${this.rule})` : ""}`
  }
}

/** RISK_DENIED: the risk gate refused the order before it reached the broker; `rule` names the check. */
export class RiskDenied extends QmtbusError {}

/** NOT_CONNECTED: the gateway is not connected to the broker (outside the window, reconnecting). */
export class NotConnected extends QmtbusError {}

/** BAD_REPLY: the reply could not be decoded, or was not the kind the command expects. */
export class BadReply extends QmtbusError {}

/** @param {Record<string, any>} reply an `error` reply */
export function errorFromReply(reply) {
  const code = String(reply.code ?? "")
  const cls = code === "RISK_DENIED" ? RiskDenied : code === "NOT_CONNECTED" ? NotConnected : QmtbusError
  const err = new cls(code, String(reply.message ?? ""), String(reply.rule ?? ""))
  err.name = cls.name
  return err
}

/**
 * No reply from the gateway after every allowed attempt; the message is one
 * sentence that says what to check. `sent` is false when the request provably
 * never left this process (no connection took it), so it cannot have taken effect.
 */
export class GatewayUnreachable extends Error {
  /** @param {string} message @param {string} address @param {boolean} sent */
  constructor(message, address, sent) {
    super(message)
    this.name = "GatewayUnreachable"
    this.code = "UNREACHABLE"
    this.address = address
    this.sent = sent
  }
}

/** The event stream received nothing, not even a heartbeat, for `silenceMs`. */
export class GatewaySilent extends Error {
  /** @param {string} address @param {number} silenceMs */
  constructor(address, silenceMs) {
    super(`no event or heartbeat from ${address} for ${silenceMs} ms; is the gateway running?`)
    this.name = "GatewaySilent"
    this.code = "SILENT"
    this.address = address
  }
}

/**
 * Events `from_seq`..`to_seq` of `epoch` were missed and `replay` could not
 * fill them (`to_seq` is Infinity when the rest of an ended epoch is gone).
 */
export class EventsLost extends Error {
  /** @param {string} epoch @param {number} fromSeq @param {number} toSeq @param {string} why */
  constructor(epoch, fromSeq, toSeq, why) {
    const range = Number.isFinite(toSeq) ? `${fromSeq}..${toSeq}` : `${fromSeq} to the end`
    super(`events ${range} of epoch ${epoch} were lost: ${why}`)
    this.name = "EventsLost"
    this.code = "EVENTS_LOST"
    this.epoch = epoch
    this.from_seq = fromSeq
    this.to_seq = toSeq
  }
}
