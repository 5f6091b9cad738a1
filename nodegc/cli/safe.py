"""Untrusted text made safe for a terminal and a text log: one function, used wherever text
leaves nodegc for people (tables, `history`, `status`, the text log).

Labels, names, tags, build-cache descriptions and engine error messages come from whoever runs
containers on the node. Raw, an ESC sequence repaints the terminal and a newline forges a log
line. Control characters are shown instead as visible escapes (`\\x1b`, `\\n`, `\\u202e`); the
rest of the text, non-ASCII letters included, is left as it is. JSON output and JSON logs need
none of this: the JSON encoder escapes them exactly.
"""

from __future__ import annotations

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# C0, DEL and C1 controls, and the Unicode characters that move or reorder text on a terminal:
# line and paragraph separators, bidirectional overrides and isolates ("Trojan source").
_CONTROLS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
_UNICODE = [0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]


def _escape(code: int) -> str:
    char = chr(code)
    if char in _NAMED:
        return _NAMED[char]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_TABLE = {code: _escape(code) for code in (*_CONTROLS, *_UNICODE)}
_TABLE_KEEP_NEWLINES = {k: v for k, v in _TABLE.items() if k != ord("\n")}


def visible(text: object) -> str:
    """`text` (str() of it) with every control character shown as an escape: one line."""
    return str(text).translate(_TABLE)


def visible_lines(text: str) -> str:
    """Like `visible`, but newlines stay: for a block whose lines nodegc itself made (each
    untrusted part already passed through `visible`), as the last guard before it is written."""
    return text.translate(_TABLE_KEEP_NEWLINES)
