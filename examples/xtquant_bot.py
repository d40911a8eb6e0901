"""A hand-written miniQMT bot of the usual shape, in plain xtquant: connect, subscribe,
query the asset, start a jobs thread that places orders, print every callback.

Nothing here knows about qmtbus. On Windows it runs against miniQMT with
`python xtquant_bot.py`; on any machine it trades through a qmtbus gateway with

    qmtbus xt run examples/xtquant_bot.py [STOCK_CODE ORDERS INTERVAL PRICE]

Only the path and the account id are the user's to edit.
"""

import sys
import threading
import time

from xtquant import xtconstant
from xtquant.xttrader import XtQuantTrader, XtQuantTraderCallback
from xtquant.xttype import StockAccount

PATH = r"D:\国金QMT交易端模拟\userdata_mini"  # miniQMT's userdata_mini folder
ACCOUNT = "SIM0001"


def say(*parts):
    # one write per line: the jobs thread and the callback thread print at once
    sys.stdout.write(" ".join(str(p) for p in parts) + "\n")
    sys.stdout.flush()


class Callback(XtQuantTraderCallback):
    def __init__(self):
        self.disconnected = threading.Event()

    def on_disconnected(self):
        say("disconnected")
        self.disconnected.set()

    def on_account_status(self, status):
        say("account_status", status.account_id, status.status)

    def on_stock_asset(self, asset):
        say("asset", asset.account_id, asset.cash, asset.total_asset)

    def on_stock_order(self, order):
        say("order", order.order_id, order.order_status, order.order_remark)

    def on_stock_trade(self, trade):
        say("trade", trade.traded_id, trade.order_id, trade.traded_volume, trade.order_remark)

    def on_stock_position(self, position):
        say("position", position.stock_code, position.volume)

    def on_order_error(self, order_error):
        say("order_error", order_error.order_id, order_error.error_msg)

    def on_cancel_error(self, cancel_error):
        say("cancel_error", cancel_error.order_id, cancel_error.error_msg)

    def on_order_stock_async_response(self, response):
        say("response", response.seq, response.order_id, response.order_remark)


def jobs(trader, account, stock_code, orders, interval, price):
    """The jobs thread: one limit buy of a lot every `interval` seconds."""
    for n in range(orders):
        seq = trader.order_stock_async(
            account, stock_code, xtconstant.STOCK_BUY, 100, xtconstant.FIX_PRICE, price,
            "seedbot", f"job{n}",
        )  # fmt: skip
        say("sent", n, seq)
        time.sleep(interval)
    say("jobs done")


def main():
    stock_code = sys.argv[1] if len(sys.argv) > 1 else "600000.SH"
    orders = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    interval = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
    price = float(sys.argv[4]) if len(sys.argv) > 4 else 11.0

    callback = Callback()
    trader = XtQuantTrader(PATH, int(time.time()) % 100000, callback)
    trader.start()
    if trader.connect() != 0:
        say("connect failed")
        return 1
    account = StockAccount(ACCOUNT)
    if trader.subscribe(account) != 0:
        say("subscribe failed")
        return 1
    asset = trader.query_stock_asset(account)
    say("start cash", asset.cash if asset else None)
    threading.Thread(
        target=jobs, args=(trader, account, stock_code, orders, interval, price), daemon=True
    ).start()
    while not callback.disconnected.wait(1):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
