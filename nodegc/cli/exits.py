"""nodegc's exit codes, one place for all of them (README: "Exit codes")."""

EXIT_OK = 0
"""Done."""
EXIT_INCOMPLETE = 1
"""Finished, but some removal failed or the image target was not reached."""
EXIT_USAGE = 2
"""Usage or configuration error: nothing was touched."""
EXIT_UNREACHABLE = 3
"""The engine (or the daemon, for `status`) could not be reached or failed to list."""
