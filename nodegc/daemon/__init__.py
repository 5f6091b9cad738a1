"""`nodegc run`: the scheduled reconcile loop and what serves it.

The loop (`loop.py`) only decides which step runs when; a cycle itself is `nodegc.collect`.
Around it: the engine's event stream (`events.py`), the condition board (`conditions.py`), the
read-only HTTP listener (`server.py`), Prometheus metrics (`metrics.py`), sd_notify
(`notify.py`) and retry pacing (`backoff.py`).
"""
