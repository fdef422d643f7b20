"""Capture: the mitmproxy addon (``capture``) and its off-loop worker (``worker``, ``record``)."""

from pathlib import Path

#: Path of the addon script, for ``mitmdump -s``.
SCRIPT = str(Path(__file__).with_name("script.py"))
