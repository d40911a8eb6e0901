"""Profit and loss by average cost (the A-share brokers' convention), as DuckDB views.

The method, per account and stock (one position per stock, as the broker keeps it):

- a buy adds its shares and its cost, the traded amount plus its fees;
  the average cost is cost / shares (the broker's `avg_price`);
- a sell takes shares out at the average cost: realized P&L = traded amount
  - that sell's fees (commission, stamp duty, transfer fee) - shares x average cost;
  the average cost of what is left does not change;
- unrealized P&L = shares held x last price - their cost.

So fees are in the P&L twice over: a buy's fees raise the cost, a sell's lower
the proceeds. Shares held before the record began open the book at the
broker's own figures: the last `positions` row before the stock's first
recorded fill (volume x avg_price). Per strategy: every strategy shares the
account's average cost of a stock; a sell's realized P&L belongs to the
strategy that sold, and a strategy holds the shares its own fills bought
minus those they sold (shares from before the record belong to strategy "").
Strategies therefore add up to the account, to the cent.

Last prices are the newest of the broker's positions (`positions`) and the
recorder's own marks (`position_marks`, every recorder.mark_interval seconds in
trading sessions, see recorder/marks.py). docs/recorder.md has a worked example.
"""

from __future__ import annotations

import duckdb

from qmtbus.recorder import marks

TZ = "Asia/Shanghai"
TODAY = f"CAST(timezone('{TZ}', now()) AS DATE)"
DAY_OF = f"CAST(timezone('{TZ}', {{}}) AS DATE)"

# One row per fill, in order per (account, stock), with the book after it.
LEDGER = """
WITH RECURSIVE
f AS (
  SELECT time, trading_day, account_id, stock_code, strategy_name, traded_id, order_id,
         client_order_id, side, traded_price, traded_volume, traded_amount, fees, cash_flow,
         row_number() OVER (PARTITION BY account_id, stock_code ORDER BY time, traded_id) AS n
  FROM fills WHERE side IN ('buy', 'sell')
),
stocks AS (
  SELECT account_id, stock_code, min(time) AS first_fill FROM f GROUP BY ALL
),
opening AS (
  SELECT s.account_id, s.stock_code, CAST(coalesce(p.volume, 0) AS BIGINT) AS volume,
         CAST(coalesce(p.volume * p.avg_price, 0) AS DOUBLE) AS cost
  FROM stocks s LEFT JOIN positions p
    ON p.account_id = s.account_id AND p.stock_code = s.stock_code AND p.time < s.first_fill
  QUALIFY row_number() OVER (
    PARTITION BY s.account_id, s.stock_code ORDER BY p.time DESC NULLS LAST, p.seq DESC) = 1
),
book(account_id, stock_code, n, volume_before, volume, cost, realized) AS (
  SELECT account_id, stock_code, CAST(0 AS BIGINT), CAST(0 AS BIGINT), volume, cost,
         CAST(0 AS DOUBLE) FROM opening
  UNION ALL
  SELECT b.account_id, b.stock_code, f.n, b.volume,
         CASE WHEN f.side = 'buy' THEN b.volume + f.traded_volume
              ELSE greatest(b.volume - f.traded_volume, 0) END,
         CASE WHEN f.side = 'buy' THEN b.cost + f.traded_amount + f.fees
              WHEN f.traded_volume >= b.volume THEN CAST(0 AS DOUBLE)
              ELSE b.cost - b.cost * f.traded_volume / b.volume END,
         CASE WHEN f.side = 'buy' THEN CAST(0 AS DOUBLE)
              WHEN b.volume = 0 THEN f.traded_amount - f.fees
              ELSE f.traded_amount - f.fees
                   - b.cost * least(f.traded_volume, b.volume) / b.volume END
  FROM book b JOIN f
    ON f.account_id = b.account_id AND f.stock_code = b.stock_code AND f.n = b.n + 1
)
SELECT f.time, f.trading_day, f.account_id, f.stock_code, f.strategy_name, f.traded_id,
       f.order_id, f.client_order_id, f.side, f.traded_price, f.traded_volume,
       f.traded_amount, f.fees, f.cash_flow, b.volume AS volume_after, b.cost AS cost_after,
       b.cost / nullif(b.volume, 0) AS avg_cost_after, b.realized,
       CASE WHEN f.side = 'sell' THEN greatest(f.traded_volume - b.volume_before, 0)
            ELSE 0 END AS uncovered_volume, f.n
FROM f JOIN book b USING (account_id, stock_code, n)
ORDER BY f.time, f.traded_id"""

# The newest price the record holds per (account, stock): broker positions or marks.
LAST_PRICES = f"""
SELECT account_id, stock_code, last_price, time AS price_time FROM (
  SELECT account_id, stock_code, last_price, time FROM positions WHERE last_price > 0
  UNION ALL
  SELECT account_id, stock_code, last_price, time FROM {marks.POSITION_MARKS}
  WHERE last_price > 0
)
QUALIFY row_number() OVER (PARTITION BY account_id, stock_code ORDER BY time DESC) = 1"""

# Every stock the account holds or has traded, as of now.
POSITIONS = f"""
WITH l AS MATERIALIZED (SELECT * FROM pnl_ledger),
last_fill AS (
  SELECT * FROM l
  QUALIFY row_number() OVER (PARTITION BY account_id, stock_code ORDER BY n DESC) = 1
),
unfilled AS (  -- held, never traded in the record: the broker's own cost
  SELECT p.account_id, p.stock_code, p.volume, p.volume * p.avg_price AS cost
  FROM positions p ANTI JOIN last_fill l USING (account_id, stock_code)
  QUALIFY row_number() OVER (
    PARTITION BY p.account_id, p.stock_code ORDER BY p.time DESC, p.seq DESC) = 1
),
held AS (
  SELECT account_id, stock_code, volume_after AS volume, cost_after AS cost FROM last_fill
  UNION ALL SELECT account_id, stock_code, volume, cost FROM unfilled
),
traded AS (
  SELECT account_id, stock_code, sum(realized) AS realized_total, sum(fees) AS fees_total,
         sum(realized) FILTER (trading_day = {TODAY}) AS realized_today,
         sum(fees) FILTER (trading_day = {TODAY}) AS fees_today,
         count(*) FILTER (trading_day = {TODAY}) AS fills_today
  FROM l GROUP BY ALL
)
SELECT h.account_id, h.stock_code, h.volume, round(h.cost / nullif(h.volume, 0), 4) AS avg_cost,
       round(h.cost, 2) AS cost, p.last_price, round(h.volume * p.last_price, 2) AS market_value,
       round(h.volume * p.last_price - h.cost, 2) AS unrealized,
       round(coalesce(t.realized_today, 0), 2) AS realized_today,
       round(coalesce(t.fees_today, 0), 2) AS fees_today,
       coalesce(t.fills_today, 0) AS fills_today,
       round(coalesce(t.realized_total, 0), 2) AS realized_total,
       round(coalesce(t.fees_total, 0), 2) AS fees_total, p.price_time
FROM held h LEFT JOIN traded t USING (account_id, stock_code)
LEFT JOIN pnl_last_prices p USING (account_id, stock_code)
ORDER BY h.account_id, h.stock_code"""

TODAY_VIEW = """
SELECT * FROM pnl_positions WHERE volume > 0 OR fills_today > 0"""

# One row per (account, trading day): what the fills realized, and what the broker's
# total asset did (its last figure that day, from `assets` and the recorder's marks).
DAILY = f"""
WITH closes AS (
  SELECT account_id, {DAY_OF.format("time")} AS trading_day, total_asset, cash, market_value
  FROM (SELECT account_id, time, total_asset, cash, market_value FROM assets
        UNION ALL
        SELECT account_id, time, total_asset, cash, market_value FROM {marks.EQUITY_MARKS})
  QUALIFY row_number() OVER (
    PARTITION BY account_id, {DAY_OF.format("time")} ORDER BY time DESC) = 1
),
traded AS (
  SELECT account_id, trading_day, count(*) AS fills,
         sum(traded_amount) FILTER (side = 'buy') AS bought,
         sum(traded_amount) FILTER (side = 'sell') AS sold,
         sum(fees) AS fees, sum(realized) AS realized, sum(cash_flow) AS cash_flow
  FROM pnl_ledger GROUP BY ALL
),
days AS (
  SELECT account_id, trading_day FROM closes UNION SELECT account_id, trading_day FROM traded
)
SELECT d.account_id, d.trading_day, coalesce(t.fills, 0) AS fills,
       round(coalesce(t.bought, 0), 2) AS bought, round(coalesce(t.sold, 0), 2) AS sold,
       round(coalesce(t.fees, 0), 2) AS fees, round(coalesce(t.realized, 0), 2) AS realized,
       round(coalesce(t.cash_flow, 0), 2) AS cash_flow,
       c.total_asset AS closing_total_asset,
       round(c.total_asset - lag(c.total_asset) OVER (
         PARTITION BY d.account_id ORDER BY d.trading_day), 2) AS asset_change
FROM days d LEFT JOIN traded t USING (account_id, trading_day)
LEFT JOIN closes c USING (account_id, trading_day)
ORDER BY d.account_id, d.trading_day"""

# Per (account, trading day, strategy): realized by the strategy's sells; on today's rows
# also what it holds now at the account's average cost and the last price.
BY_STRATEGY = f"""
WITH l AS MATERIALIZED (SELECT * FROM pnl_ledger),
p AS MATERIALIZED (SELECT * FROM pnl_positions),
traded AS (
  SELECT account_id, trading_day, strategy_name, count(*) AS fills,
         sum(traded_amount) FILTER (side = 'buy') AS bought,
         sum(traded_amount) FILTER (side = 'sell') AS sold,
         sum(fees) AS fees, sum(realized) AS realized
  FROM l GROUP BY ALL
),
shares AS (
  SELECT account_id, strategy_name, stock_code,
         sum(CASE side WHEN 'buy' THEN traded_volume ELSE -traded_volume END) AS volume
  FROM l GROUP BY ALL
  UNION ALL  -- what the book opened with belongs to no strategy
  SELECT account_id, '' AS strategy_name, stock_code,
         volume_after - CASE side WHEN 'buy' THEN traded_volume ELSE -traded_volume END
  FROM l WHERE n = 1
  UNION ALL  -- and so does a holding never traded in the record
  SELECT account_id, '' AS strategy_name, stock_code, volume
  FROM p ANTI JOIN (SELECT DISTINCT account_id, stock_code FROM l) USING (account_id, stock_code)
),
held AS (
  SELECT s.account_id, s.strategy_name, sum(s.volume) AS volume_total,
         sum(s.volume / p.volume * p.unrealized) AS unrealized,
         sum(s.volume * p.last_price) AS market_value
  FROM shares s JOIN p USING (account_id, stock_code)
  WHERE s.volume <> 0 AND p.volume <> 0 GROUP BY ALL
),
rows AS (
  SELECT account_id, trading_day, strategy_name FROM traded
  UNION SELECT account_id, {TODAY}, strategy_name FROM held
)
SELECT r.account_id, r.trading_day, r.strategy_name, coalesce(t.fills, 0) AS fills,
       round(coalesce(t.bought, 0), 2) AS bought, round(coalesce(t.sold, 0), 2) AS sold,
       round(coalesce(t.fees, 0), 2) AS fees, round(coalesce(t.realized, 0), 2) AS realized,
       CASE WHEN r.trading_day = {TODAY} THEN round(coalesce(h.market_value, 0), 2) END
         AS market_value,
       CASE WHEN r.trading_day = {TODAY} THEN round(coalesce(h.unrealized, 0), 2) END
         AS unrealized
FROM rows r LEFT JOIN traded t USING (account_id, trading_day, strategy_name)
LEFT JOIN held h ON h.account_id = r.account_id AND h.strategy_name = r.strategy_name
  AND r.trading_day = {TODAY}
ORDER BY r.account_id, r.trading_day, r.strategy_name"""

VIEWS = {
    "pnl_ledger": LEDGER,
    "pnl_last_prices": LAST_PRICES,
    "pnl_positions": POSITIONS,
    "pnl_today": TODAY_VIEW,
    "pnl_daily": DAILY,
    "pnl_by_strategy": BY_STRATEGY,
}


def create(con: duckdb.DuckDBPyConnection) -> None:
    """The mark tables and the P&L views (inside the caller's transaction)."""
    marks.create(con)
    for name, sql in VIEWS.items():
        con.execute(f"CREATE OR REPLACE VIEW {name} AS {sql}")
