"""Start and stop ``llm-audit proxy`` as a child process: used by the demo, tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ProxyProcess", "free_port"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ProxyProcess:
    """A running auditing proxy on loopback, with its own mitmproxy confdir."""

    store: Path
    confdir: Path
    intercept: list[str] = field(default_factory=lambda: ["127.0.0.1", "localhost"])
    upstream_ca: Path | None = None
    config: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    port: int = 0
    bare: bool = False  # plain mitmdump without the addon (benchmark baseline)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ca_bundle(self) -> Path:
        return self.confdir / "llm-audit-ca-bundle.pem"

    @property
    def mitm_ca(self) -> Path:
        return self.confdir / "mitmproxy-ca-cert.pem"

    def command(self) -> list[str]:
        if self.bare:
            args = [sys.executable, "-c", "from mitmproxy.tools.main import mitmdump; mitmdump()",
                    "--listen-host", "127.0.0.1", "--listen-port", str(self.port),
                    "--set", f"confdir={self.confdir}", "--set", "flow_detail=0",
                    "--set", "connection_strategy=lazy"]
            if self.upstream_ca:
                args += ["--set", f"ssl_verify_upstream_trusted_ca={self.upstream_ca}"]
            return args + self.extra_args
        args = [sys.executable, "-m", "llm_proxy", "proxy", "--port", str(self.port),
                "--store", str(self.store), "--set", f"confdir={self.confdir}"]
        for host in self.intercept:
            args += ["--intercept", host]
        if self.upstream_ca:
            args += ["--upstream-ca", str(self.upstream_ca)]
        if self.config:
            args += ["--config", str(self.config)]
        return args + self.extra_args

    def start(self, timeout: float = 30.0) -> ProxyProcess:
        self.port = self.port or free_port()
        self.confdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.confdir / f"proxy-{self.port}.log"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"proxy exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    if self.bare or self.ca_bundle.exists():
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"proxy did not start in {timeout} s: {self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        if self.log_path and self.log_path.exists():
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return ""

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGINT (a clean shutdown that flushes everything), then wait."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        """SIGKILL the proxy process only (its capture worker then flushes on EOF)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def kill_group(self) -> None:
        """SIGKILL the proxy and its capture worker together."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)

    def __enter__(self) -> ProxyProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
