"""One garbage-collection cycle: observe, plan, act, report.

`observe.py` takes the snapshot (the runtime's listings and the filesystem's statvfs),
`cycle.py` runs the steps in order and asks `nodegc.policy` what to remove, `removal.py` carries
out one removal and turns the engine's answer into an outcome, `sandboxes.py` collects CRI pod
sandboxes after their containers. No rule lives here: rules are the policy's.
"""
