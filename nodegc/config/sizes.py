"""Sizes in settings: "20GiB", "500MB", "20Gi" (Kubernetes' way), or a whole number of bytes.

Parsed by pydantic's ByteSize (binary units KiB..PiB, decimal KB..PB, B); a boolean, a negative,
a fraction of a byte or text that is no size is refused naming the setting (exit 2). Shown back
in the largest binary unit that holds it exactly ("20GiB"), else in bytes ("1234B"); 0 is 0.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ByteSize, PlainSerializer

_KUBERNETES_SUFFIX = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]i)\s*$")
_UNITS = (("PiB", 1 << 50), ("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))
# A size beyond this is a typo, not a disk (1 EiB).
MAX_SIZE = 1 << 60


def _to_size(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a size is due here, not a boolean; write e.g. '20GiB' or 0 (off)")
    if isinstance(value, int) and value < 0:
        raise ValueError("a size cannot be negative; write e.g. '20GiB' or 0 (off)")
    if isinstance(value, float):
        raise ValueError("a size is a whole number of bytes or a string such as '20GiB'")
    if isinstance(value, str):
        if value.strip().startswith("-"):
            raise ValueError("a size cannot be negative; write e.g. '20GiB' or 0 (off)")
        match = _KUBERNETES_SUFFIX.match(value)
        if match:
            return f"{match.group(1)}{match.group(2)}B"
    return value


def format_size(value: int) -> int | str:
    """The size as a setting is written: "20GiB", "1234B", 0."""
    n = int(value)
    if n == 0:
        return 0
    for unit, factor in _UNITS:
        if n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n}B"


def _check_range(value: ByteSize) -> ByteSize:
    if int(value) > MAX_SIZE:
        raise ValueError("a size beyond 1 EiB is a typo, not a disk")
    return value


Size = Annotated[
    ByteSize,
    BeforeValidator(_to_size),
    AfterValidator(_check_range),
    PlainSerializer(format_size, when_used="json-unless-none"),
]
