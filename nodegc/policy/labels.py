"""The labels that decide an object's fate whatever its age or the disk: one home for the rule.

`nodegc.io/keep=true` (any case) on a container or pod sandbox: never removed. (Images are kept
by `images.pinned` patterns and the `nodegc.io/pinned` label: `policy/images.py is_pinned`.)
"""

from __future__ import annotations

from collections.abc import Mapping

from nodegc.model import LABEL_KEEP


def keep_labelled(labels: Mapping[str, str]) -> bool:
    """True for an object labelled nodegc.io/keep=true (any case): never removed."""
    return labels.get(LABEL_KEEP, "").lower() == "true"
