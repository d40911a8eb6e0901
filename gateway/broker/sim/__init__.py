"""The embedded simulator: a miniQMT terminal with XtQuantTrader's interface (broker = "sim")."""
