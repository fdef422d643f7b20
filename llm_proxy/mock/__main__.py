"""`python -m llm_proxy.mock`: run the mock LLM server in the foreground until Ctrl-C / SIGTERM."""

from __future__ import annotations

import argparse
import sys

from llm_proxy.mock.server import SCENARIOS, MockLLMServer, run_forever


def _announce(server: MockLLMServer) -> None:
    print(f"Mock LLM server listening on {server.url}")
    print(f"CA certificate: {server.ca_cert_path or '(none: plain HTTP)'}")
    print(f"Scenarios (x-mock-scenario header): {', '.join(sorted(SCENARIOS))}")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m llm_proxy.mock",
        description="A deterministic mock of the OpenAI and Anthropic APIs.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000, help="0 picks a free port")
    parser.add_argument("--no-tls", action="store_true", help="serve plain HTTP")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before every reply")
    parser.add_argument("--cert-dir", default=None, help="where the CA and server cert are kept")
    parser.add_argument("--no-http2", action="store_true", help="offer HTTP/1.1 only (ALPN)")
    args = parser.parse_args(argv)
    try:
        run_forever(args.host, args.port, not args.no_tls, args.latency_ms, args.cert_dir,
                    on_ready=_announce, http2=not args.no_http2)  # fmt: skip
    except OSError as exc:
        parser.exit(2, f"error: cannot serve on {args.host}:{args.port}: {exc.strerror or exc}\n")


if __name__ == "__main__":
    main()
