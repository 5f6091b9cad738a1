"""What nodegc keeps on disk in its state directory: history (`store.py`), the one-collector
lock (`lock.py`) and the audit record (`audit.py`). Atomic writes, forgiving loads."""
