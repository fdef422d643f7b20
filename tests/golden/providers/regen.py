"""Golden provider payloads: load a case, and regenerate its ``expected.json``.

Each directory here is one recorded-shape exchange:

* ``case.json``      host, path, method, status_code, response_content_type and the names of
                     the body files (``request``/``response``, either may be null);
* ``request.json``   the request body as a client sends it;
* ``response.*``     the response body: ``.json``, ``.sse`` (text/event-stream), ``.html``, or
                     ``.bin`` (AWS binary event-stream, decoded as UTF-8 with replacement, the
                     way the proxy hands binary bodies to the parsers);
* ``expected.json``  the parsed fields; ``assembled_response`` is stored parsed, for review.

Run ``python tests/golden/providers/regen.py [CASE ...]`` after a deliberate parser change,
then read the diff of the ``expected.json`` files: every changed value must be explained.
``tests/test_providers.py`` imports ``load_case`` and ``as_expected`` from here.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def case_dirs() -> list[Path]:
    return sorted(p for p in HERE.iterdir() if (p / "case.json").is_file())


def read_body(case_dir: Path, name: str | None, decode: str = "replace") -> str | None:
    if name is None:
        return None
    raw = (case_dir / name).read_bytes()
    return raw.decode("utf-8", decode) if decode != "latin-1" else raw.decode("latin-1")


def load_case(case_dir: Path, decode: str = "replace") -> dict[str, Any]:
    """The keyword arguments of ``parse_exchange`` for one case."""
    meta = json.loads((case_dir / "case.json").read_text())
    return {
        "host": meta["host"],
        "path": meta["path"],
        "method": meta.get("method", "POST"),
        "status_code": meta.get("status_code"),
        "request_body": read_body(case_dir, meta.get("request"), decode),
        "response_body": read_body(case_dir, meta.get("response"), decode),
        "response_content_type": meta.get("response_content_type"),
    }


def as_expected(parsed: Any) -> dict[str, Any]:
    """A ParsedExchange as stored in expected.json (assembled response parsed)."""
    fields = dataclasses.asdict(parsed)
    if fields["assembled_response"] is not None:
        fields["assembled_response"] = json.loads(fields["assembled_response"])
    return fields


def main(names: list[str]) -> int:
    sys.path.insert(0, str(HERE.parents[2]))
    from llm_proxy.providers import parse_exchange

    dirs = [HERE / n for n in names] if names else case_dirs()
    for case_dir in dirs:
        parsed = parse_exchange(**load_case(case_dir))
        text = json.dumps(as_expected(parsed), indent=2, ensure_ascii=False) + "\n"
        (case_dir / "expected.json").write_text(text)
        print(f"wrote {case_dir.name}/expected.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
