"""Text that came from an agent (model replies, program output, file names) made safe to print.

A terminal obeys control sequences in what it prints: an agent's output could clear the screen,
retitle the window, paint a fake green "gold medal" line or plant an OSC-8 link. Every place
that prints agent-made text passes it through :func:`printable` first (and rich's own markup
escaping after that, where rich renders it).
"""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls (CSI 0x9b, OSC 0x9d), and the Unicode
# direction overrides that reorder what a line appears to say.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object) -> str:
    """``str(text)`` with every control character shown as an escape (``ESC`` -> ``\\x1b``);
    newlines and tabs are kept."""
    return _CONTROL.sub(_visible, str(text))
