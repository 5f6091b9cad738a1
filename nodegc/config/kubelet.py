"""Living beside the kubelet: read its image GC settings, derive nodegc's, say what it would do.

An external image cleaner that acts at or above the kubelet's own thresholds fights the kubelet's
image GC: both free space at the same moment, and between them the node's image cache is emptied
(binderhub #1584). nodegc avoids that by acting *below* the kubelet: with `--kubelet-config PATH`
it reads the node's KubeletConfiguration and sets its own thresholds a margin under the kubelet's,
so that nodegc starts first and stops under the kubelet's low threshold, and the kubelet's GC never
has anything to do.

Everything here is pure except `read_kubelet_config`, which reads one file. The KubeletConfiguration
is YAML (or JSON, which is YAML too); nodegc does not depend on a YAML library, so a small reader
takes only what it needs: top-level `key: value` scalars and the one-level `evictionHard` mapping.
Anything else in the file is skipped unread.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from nodegc.config import ConfigError, ImageSettings
from nodegc.durations import format_duration, parse_duration
from nodegc.units import human_bytes

DEFAULT_KUBELET_CONFIG = Path("/var/lib/kubelet/config.yaml")
# How far below the kubelet's thresholds nodegc acts, in percentage points.
DEFAULT_MARGIN = 5

# The kubelet's own defaults (pkg/kubelet/apis/config/v1beta1/defaults.go).
KUBELET_HIGH_THRESHOLD = 85
KUBELET_LOW_THRESHOLD = 80
KUBELET_MINIMUM_AGE = timedelta(minutes=2)
KUBELET_MAXIMUM_AGE = timedelta(0)
# Default hard eviction threshold of the image filesystem: imagefs.available<15%.
KUBELET_IMAGEFS_EVICTION_PERCENT = 15

KIND = "KubeletConfiguration"
API_GROUP = "kubelet.config.k8s.io/"

_HIGH = "imageGCHighThresholdPercent"
_LOW = "imageGCLowThresholdPercent"
_MIN_AGE = "imageMinimumGCAge"
_MAX_AGE = "imageMaximumGCAge"
_ENDPOINT = "containerRuntimeEndpoint"
_EVICTION_HARD = "evictionHard"
_IMAGEFS_AVAILABLE = "imagefs.available"

_KEY_LINE = re.compile(r"""^(?P<key>"[^"]*"|'[^']*'|[^\s:#'"][^:#]*?)\s*:(?:\s+(?P<value>.*))?$""")
_QUANTITY = re.compile(
    r"^(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"
)
_SUFFIXES = {
    None: 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


class KubeletConfigError(ConfigError):
    """The kubelet's configuration file cannot be used; the message names the file and the problem.

    A ConfigError, so the command line reports it like any other configuration error (exit 2).
    """


@dataclass(frozen=True, slots=True)
class Eviction:
    """The kubelet's hard eviction threshold of the image filesystem (`imagefs.available`).

    Exactly one of `percent` (eviction when less than this percentage is available) and
    `bytes` (eviction when fewer bytes than this are available) is set.
    """

    percent: float | None = None
    bytes: int | None = None

    def describe(self) -> str:
        """'imagefs.available<15%' or 'imagefs.available<10.0 GiB'."""
        if self.percent is not None:
            return f"{_IMAGEFS_AVAILABLE}<{self.percent:g}%"
        return f"{_IMAGEFS_AVAILABLE}<{human_bytes(self.bytes or 0)}"


@dataclass(frozen=True, slots=True)
class KubeletGC:
    """The kubelet's image garbage collection settings, with the kubelet's defaults."""

    high_threshold_percent: int = KUBELET_HIGH_THRESHOLD
    low_threshold_percent: int = KUBELET_LOW_THRESHOLD
    minimum_age: timedelta = KUBELET_MINIMUM_AGE
    maximum_age: timedelta = KUBELET_MAXIMUM_AGE
    # containerRuntimeEndpoint; "" when the file does not say (the kubelet's flag may).
    # None when the file sets evictionHard without imagefs.available: what the kubelet then uses
    # for it has changed between releases, so nodegc claims nothing about eviction.
    imagefs_eviction: Eviction | None = Eviction(percent=KUBELET_IMAGEFS_EVICTION_PERCENT)
    # The file it was read from ("" when built in code).
    source: str = ""

    @property
    def label(self) -> str:
        """'kubelet (85/80)': the kubelet and its high/low thresholds, for one-line messages."""
        return f"kubelet ({self.high_threshold_percent}/{self.low_threshold_percent})"


# -- reading --------------------------------------------------------------------------------------
def read_kubelet_config(path: str | Path) -> KubeletGC:
    """Read the kubelet's image GC settings from a KubeletConfiguration file (YAML or JSON).

    Keys the file leaves out take the kubelet's defaults (85/80, 2m, 0s). Raises
    KubeletConfigError naming the path for a file that is missing, unreadable, not a
    KubeletConfiguration, or holds a value the kubelet itself would refuse.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KubeletConfigError(
            f"kubelet config {p}: not found; give the kubelet's --config file (often "
            f"{DEFAULT_KUBELET_CONFIG}) to --kubelet-config"
        ) from None
    except IsADirectoryError:
        raise KubeletConfigError(
            f"kubelet config {p}: is a directory; give the KubeletConfiguration file"
        ) from None
    except PermissionError as exc:
        raise KubeletConfigError(f"kubelet config {p}: not readable ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise KubeletConfigError(f"kubelet config {p}: not UTF-8 text") from None
    except OSError as exc:
        raise KubeletConfigError(f"kubelet config {p}: cannot read ({exc.strerror})") from None
    return parse_kubelet_config(text, source=str(p))


def parse_kubelet_config(text: str, source: str = "<kubelet config>") -> KubeletGC:
    """The image GC settings in a KubeletConfiguration's text (pure; see read_kubelet_config)."""
    data = _parse_document(text, source)
    kind = data.get("kind")
    if kind is not None and kind != KIND:
        raise KubeletConfigError(f"kubelet config {source}: kind is {kind!r}, not {KIND}")
    api_version = data.get("apiVersion")
    if api_version is not None and not str(api_version).startswith(API_GROUP):
        raise KubeletConfigError(
            f"kubelet config {source}: apiVersion {api_version!r} is not {API_GROUP}v1beta1"
        )
    high = _percent(data, _HIGH, KUBELET_HIGH_THRESHOLD, source)
    low = _percent(data, _LOW, KUBELET_LOW_THRESHOLD, source)
    if low >= high:
        raise KubeletConfigError(
            f"kubelet config {source}: {_LOW} ({low}) must be below {_HIGH} ({high}); the "
            "kubelet itself refuses this file"
        )
    minimum_age = _duration(data, _MIN_AGE, KUBELET_MINIMUM_AGE, source)
    maximum_age = _duration(data, _MAX_AGE, KUBELET_MAXIMUM_AGE, source)
    if maximum_age and maximum_age <= minimum_age:
        raise KubeletConfigError(
            f"kubelet config {source}: {_MAX_AGE} ({format_duration(maximum_age)}) must be above "
            f"{_MIN_AGE} ({format_duration(minimum_age)}) or 0s"
        )
    endpoint = data.get(_ENDPOINT, "")
    if not isinstance(endpoint, str):
        raise KubeletConfigError(f"kubelet config {source}: {_ENDPOINT} must be a string")
    return KubeletGC(
        high_threshold_percent=high,
        low_threshold_percent=low,
        minimum_age=minimum_age,
        maximum_age=maximum_age,
        imagefs_eviction=_eviction(data, source),
        source=source,
    )


def _percent(data: dict[str, Any], key: str, default: int, source: str) -> int:
    value = data.get(key, default)
    if isinstance(value, str) and value.strip().isdigit():
        raise KubeletConfigError(
            f"kubelet config {source}: {key} = {value!r}: a quoted string, not an integer; the "
            "kubelet refuses it too (remove the quotes)"
        )
    if isinstance(value, bool) or not isinstance(value, int):
        raise KubeletConfigError(
            f"kubelet config {source}: {key} = {value!r}: must be an integer from 0 to 100"
        )
    if not 0 <= value <= 100:
        raise KubeletConfigError(f"kubelet config {source}: {key} = {value}: must be from 0 to 100")
    return value


def _duration(data: dict[str, Any], key: str, default: timedelta, source: str) -> timedelta:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise KubeletConfigError(
            f'kubelet config {source}: {key} = {value!r}: must be a duration such as "2m0s"'
        )
    try:
        parsed = parse_duration(value)
    except ValueError as exc:
        raise KubeletConfigError(f"kubelet config {source}: {key}: {exc}") from None
    if parsed < timedelta(0):
        raise KubeletConfigError(f"kubelet config {source}: {key} = {value}: must not be negative")
    return parsed


def _eviction(data: dict[str, Any], source: str) -> Eviction | None:
    if _EVICTION_HARD not in data:
        return Eviction(percent=KUBELET_IMAGEFS_EVICTION_PERCENT)
    hard = data[_EVICTION_HARD]
    if not isinstance(hard, dict):
        raise KubeletConfigError(f"kubelet config {source}: {_EVICTION_HARD} must be a mapping")
    value = hard.get(_IMAGEFS_AVAILABLE)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.endswith("%"):
        try:
            percent = float(text[:-1])
        except ValueError:
            return None
        return Eviction(percent=percent) if 0 <= percent <= 100 else None
    match = _QUANTITY.match(text)
    if match is None:
        return None
    amount = float(match["number"]) * _SUFFIXES[match["suffix"]]
    return Eviction(bytes=int(amount))


# -- a small reader for the YAML a KubeletConfiguration is written in ----------------------------
def _parse_document(text: str, source: str) -> dict[str, Any]:
    """Top-level scalars and one-level mappings of a YAML or JSON mapping document."""
    body = text.lstrip("\ufeff")
    if body.lstrip().startswith("{"):
        try:
            data = json.loads(body)
        except json.JSONDecodeError as exc:
            raise KubeletConfigError(f"kubelet config {source}: not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise KubeletConfigError(f"kubelet config {source}: not a mapping")
        return data
    data: dict[str, Any] = {}
    block: dict[str, Any] | None = None
    seen_content = False
    for number, raw in enumerate(body.splitlines(), start=1):
        line = raw.rstrip()
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped in ("---", "...") and not line[0].isspace():
            if seen_content:
                raise KubeletConfigError(
                    f"kubelet config {source}: line {number}: a second YAML document; the file "
                    "must hold one KubeletConfiguration"
                )
            continue
        seen_content = True
        if line[0].isspace() or stripped == "-" or stripped.startswith("- "):
            # Inside the block of the last top-level key (YAML lets a list under a key start at
            # column 0): read one level of `key: value`.
            if block is not None:
                entry = _KEY_LINE.match(stripped)
                if entry is not None and entry["value"]:
                    block[_scalar(entry["key"], number, source)] = _value(
                        entry["value"], number, source
                    )
            continue
        match = _KEY_LINE.match(line)
        if match is None:
            raise KubeletConfigError(
                f"kubelet config {source}: line {number}: expected a top-level `key: value`, "
                f"found {stripped[:40]!r}"
            )
        key = _scalar(match["key"], number, source)
        value = match["value"]
        if value is None or _strip_comment(value) == "":
            block = {}
            data[key] = block
        else:
            block = None
            data[key] = _value(value, number, source)
    return data


def _value(text: str, number: int, source: str) -> Any:
    """A flow mapping `{a: b}`, or one scalar."""
    text = _strip_comment(text)
    if text.startswith("{") and text.endswith("}"):
        out: dict[str, Any] = {}
        for item in filter(None, (part.strip() for part in text[1:-1].split(","))):
            key, sep, value = item.partition(":")
            if not sep:
                raise KubeletConfigError(
                    f"kubelet config {source}: line {number}: {item!r} is not `key: value`"
                )
            out[_scalar(key.strip(), number, source)] = _value(value.strip(), number, source)
        return out
    if text.startswith(("[", "|", ">", "&", "*", "!")):
        return _Unsupported(text)
    return _typed(text, number, source)


class _Unsupported(str):
    """A YAML construct the small reader does not interpret (a list, a block scalar, an anchor)."""


def _strip_comment(text: str) -> str:
    """Remove a trailing ` # comment` that is not inside quotes."""
    quote = ""
    for i, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip()
    return text.strip()


def _scalar(text: str, number: int, source: str) -> str:
    """A key or string: quotes removed (double-quoted escapes as JSON reads them)."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            return str(json.loads(text))
        except json.JSONDecodeError:
            raise KubeletConfigError(
                f"kubelet config {source}: line {number}: bad double-quoted string {text}"
            ) from None
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    return text


def _typed(text: str, number: int, source: str) -> Any:
    """A plain scalar as YAML 1.2 reads it (int, bool, null or string); quoted stays a string."""
    if text[:1] in "\"'":
        return _scalar(text, number, source)
    if re.fullmatch(r"[-+]?[0-9]+", text):
        return int(text)
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "~"):
        return None
    return text


# -- deriving nodegc's settings -------------------------------------------------------------------
def overrides_from_kubelet(
    k: KubeletGC, margin: int = DEFAULT_MARGIN, *, base: ImageSettings | None = None
) -> dict[str, dict[str, Any]]:
    """nodegc setting overrides (nested by section, as load_settings takes them) that act
    `margin` percentage points below the kubelet.

    - high = kubelet high - margin, low = kubelet low - margin, clamped to 0..100 with low kept
      below high;
    - minimum_age = the larger of the kubelet's imageMinimumGCAge and nodegc's own (`base`, else
      the default): nodegc never removes an image the kubelet would still call too young;
    - maximum_age: when nodegc's is set (non-zero) and the kubelet's is longer, the kubelet's, so
      nodegc never removes by age an image the kubelet keeps; otherwise nodegc's is left as it is
      (0s stays off, and the kubelet keeps doing its own age-based removal).

    Raises ValueError for a margin outside 0..99, and KubeletConfigError when the result would
    leave nodegc's maximum age at or below its minimum age.
    """
    if isinstance(margin, bool) or not isinstance(margin, int) or not 0 <= margin <= 99:
        raise ValueError(f"kubelet margin {margin!r}: must be an integer from 0 to 99")
    own = base or ImageSettings()
    high = min(100, max(1, k.high_threshold_percent - margin))
    low = min(high - 1, max(0, k.low_threshold_percent - margin))
    minimum_age = max(k.minimum_age, own.minimum_age)
    maximum_age = own.maximum_age
    if maximum_age and k.maximum_age > maximum_age:
        maximum_age = k.maximum_age
    if maximum_age and maximum_age <= minimum_age:
        raise KubeletConfigError(
            f"images.maximum_age = {format_duration(maximum_age)}: must be above the minimum age "
            f"{format_duration(minimum_age)} taken from the kubelet's {_MIN_AGE}"
            f"{f' in {k.source}' if k.source else ''}; raise it or set it to 0s"
        )
    images: dict[str, Any] = {
        "high_threshold_percent": high,
        "low_threshold_percent": low,
        "minimum_age": format_duration(minimum_age),
    }
    if maximum_age != own.maximum_age:
        images["maximum_age"] = format_duration(maximum_age)
    return {"images": images}


def merge_overrides(*layers: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Merge nested overrides section by section; a later layer wins key by key."""
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for section, values in layer.items():
            merged.setdefault(section, {}).update(values)
    return merged
