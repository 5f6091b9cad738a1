"""nodegc's exit codes, one place for all of them (README: "Exit codes")."""

import gc

EXIT_OK = 0
"""Done."""
EXIT_INCOMPLETE = 1
"""Finished, but some removal failed or the image target was not reached."""
EXIT_USAGE = 2
"""Usage or configuration error: nothing was touched."""
EXIT_UNREACHABLE = 3
"""The engine (or the daemon, for `status`) could not be reached or failed to list."""

# What a one-shot command is done with, dropped with the process rather than freed object by
# object (`cli.entry` leaves by `os._exit`): freeing a big `report`'s snapshot, plan and
# document took 0.03-0.04 s of it at 20,000 containers. None (in-process callers, tests): nothing
# is kept.
leftovers: list[object] | None = None


def leave_for_exit(*objects: object) -> None:
    """Keep `objects` until the process ends, when `cli.entry` runs the command; and every object
    alive now out of the cycle collector's sight (`gc.freeze`). The command runs with the
    collector paused (`collect.pause`), so all it made is still in the youngest generation: the
    first collection once it resumes would walk them all (0.1 s for a million objects), which
    costs more than freeing them did."""
    if leftovers is not None:
        leftovers.extend(objects)
        gc.freeze()
