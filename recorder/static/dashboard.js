// qmtbus dashboard: polls /api/state and redraws; read-only (it only ever GETs).
"use strict";

const token = new URLSearchParams(location.search).get("token") || "";
const stateUrl = "api/state" + (token ? "?token=" + encodeURIComponent(token) : "");
const $ = (id) => document.getElementById(id);
const money = (v) => (v === null || v === undefined ? "" :
  Number(v).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 }));
const signed = (v) => (v > 0 ? "pos" : v < 0 ? "neg" : "");
const SIDES = { 23: "buy", 24: "sell" };
const STATUS = { 48: "unreported", 49: "wait_reporting", 50: "reported", 51: "reported_cancel",
  52: "partsucc_cancel", 55: "part_succ" };

function cell(value, kind) {
  const td = document.createElement("td");
  if (kind === "money" || kind === "pnl") td.textContent = money(value);
  else td.textContent = value === null || value === undefined ? "" : String(value);
  if (kind === "pnl") td.className = signed(value);
  return td;
}

// columns: [[header, key, kind]]
function table(target, rows, columns, emptyText) {
  const box = $(target);
  box.replaceChildren();
  if (!rows || rows.length === 0) {
    const p = document.createElement("p");
    p.className = "empty";
    p.textContent = emptyText;
    box.append(p);
    return;
  }
  const t = document.createElement("table");
  const head = t.insertRow();
  for (const [name] of columns) {
    const th = document.createElement("th");
    th.textContent = name;
    head.append(th);
  }
  for (const row of rows) {
    const tr = t.insertRow();
    tr.dataset.key = row.stock_code || row.order_id || "";
    for (const [, key, kind] of columns) tr.append(cell(typeof key === "function" ? key(row) : row[key], kind));
  }
  box.append(t);
}

function badge(id, text, level) {
  const el = $(id);
  el.textContent = text;
  el.className = "badge " + level;
}

function figures(state) {
  const a = state.asset || {};
  const pnl = state.pnl || [];
  const unrealized = pnl.reduce((s, r) => s + (r.unrealized || 0), 0);
  const realized = pnl.reduce((s, r) => s + (r.realized_today || 0), 0);
  const items = [
    ["Total asset", a.total_asset, ""], ["Cash", a.cash, ""], ["Frozen", a.frozen_cash, ""],
    ["Market value", a.market_value, ""], ["Unrealized", unrealized, signed(unrealized)],
    ["Realized today", realized, signed(realized)],
  ];
  const box = $("account");
  box.replaceChildren();
  for (const [label, value, cls] of items) {
    const d = document.createElement("div");
    d.textContent = label;
    const b = document.createElement("b");
    b.textContent = value === undefined ? "–" : money(value);
    b.className = cls;
    d.append(b);
    box.append(d);
  }
}

const charts = {};
function chart(id, data, opts) {
  const box = $(id);
  const width = Math.max(300, box.clientWidth || 520);
  box.dataset.points = String(data[0].length);
  if (!charts[id]) {
    const tzDate = (ts) => uPlot.tzDate(new Date(ts * 1e3), "Asia/Shanghai");
    charts[id] = new uPlot({ width, height: 220, tzDate, ...opts }, data, box);
  } else {
    charts[id].setData(data);
  }
}

function draw(state) {
  const g = state.gateway || {};
  if (g.reachable) badge("gateway-state", g.state, g.state === "ready" ? "ok" : "warn");
  else badge("gateway-state", "unreachable", "bad");
  badge("trading-state", g.trading || "?", g.trading === "active" ? "ok" : "warn");
  const r = state.recorder || {};
  if (r.reachable) {
    const behind = Math.max(0, (r.gateway_last_seq || 0) - (r.last_seq || 0));
    badge("recorder-state", behind ? `${behind} behind` : "up to date", behind > 1000 ? "warn" : "ok");
  } else badge("recorder-state", "unreachable", "bad");
  $("updated").textContent = "updated " + (state.time || "");
  const problems = [g.error, r.error, ...Object.entries(r.errors || {}).map(([k, v]) => `${k}: ${v}`)];
  $("problems").textContent = problems.filter(Boolean).join("; ");

  figures(state);
  table("positions", state.pnl, [
    ["Stock", "stock_code"], ["Volume", "volume"], ["Avg cost", "avg_cost"], ["Last", "last_price"],
    ["Market value", "market_value", "money"], ["Unrealized", "unrealized", "pnl"],
    ["Realized today", "realized_today", "pnl"], ["Fees today", "fees_today", "money"],
  ], "no positions");
  table("orders", state.open_orders, [
    ["Order", "order_id"], ["Stock", "stock_code"], ["Side", (o) => SIDES[o.order_type] || o.order_type],
    ["Price", "price"], ["Volume", "order_volume"], ["Traded", "traded_volume"],
    ["Status", (o) => STATUS[o.order_status] || o.order_status], ["Strategy", "strategy_name"],
  ], "no open orders");
  table("fills", state.fills, [
    ["Time", (f) => (f.time || "").slice(11, 19)], ["Stock", "stock_code"], ["Side", "side"],
    ["Price", "traded_price"], ["Volume", "traded_volume"], ["Amount", "traded_amount", "money"],
    ["Fees", "fees", "money"], ["Strategy", "strategy_name"],
  ], "no fills today");
  table("strategies", state.strategies, [
    ["Strategy", (s) => s.strategy_name || "(none)"], ["Fills", "fills"], ["Fees", "fees", "money"],
    ["Realized", "realized", "pnl"], ["Unrealized (last mark)", "unrealized", "pnl"],
  ], "nothing today");
  table("denials", state.denials, [
    ["Time", (d) => (d.time || "").slice(11, 19)], ["Stock", "stock_code"], ["Rule", "rule"],
    ["Message", "message"],
  ], "no risk denials today");
  table("alerts", state.alerts, [
    ["Time", (a) => (a.time || "").slice(11, 19)], ["Topic", "topic"], ["Data", "data"],
  ], "no alerts today");

  const eq = state.equity || [];
  chart("equity-chart", [eq.map((p) => p.t), eq.map((p) => p.total_asset)], {
    series: [{}, { label: "total asset", stroke: "#2463c7", width: 2 }],
    axes: [{}, { size: 80 }],
  });
  // one bar per trading day (x = its index), labelled with the date
  const daily = (state.daily || []).slice().reverse();
  const labels = daily.map((d) => d.day.slice(5));
  chart("daily-chart", [daily.map((_, i) => i), daily.map((d) => d.asset_change ?? 0),
    daily.map((d) => d.realized)], {
    series: [{ value: (u, i) => labels[i] ?? "" },
      { label: "asset change", stroke: "#2463c7", fill: "#2463c755",
        paths: uPlot.paths.bars({ size: [0.6, 40] }), points: { show: false } },
      { label: "realized", stroke: "#c0392b", fill: "#c0392b55",
        paths: uPlot.paths.bars({ size: [0.3, 20] }), points: { show: false } }],
    axes: [{ values: (u, splits) => splits.map((i) => labels[i] ?? ""), space: 40 }, { size: 70 }],
    scales: { x: { time: false, range: (u) => [-0.6, Math.max(0, labels.length - 1) + 0.6] } },
  });
}

async function poll() {
  let wait = 2000;
  try {
    const res = await fetch(stateUrl, { cache: "no-store" });
    if (res.ok) {
      const state = await res.json();
      wait = (state.refresh || 2) * 1000;
      if (!state.loading) draw(state);
    } else {
      $("problems").textContent = `the dashboard server says ${res.status}`;
    }
  } catch (err) {
    $("problems").textContent = "the dashboard server is not answering";
  }
  setTimeout(poll, wait);
}

poll();
