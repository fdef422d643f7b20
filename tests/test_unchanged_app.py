"""The quick start, literally: an unchanged SDK app configured only by environment variables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_support import records

from llm_proxy.cli.proxy_process import ProxyProcess
from llm_proxy.mock.server import MockLLMServer

pytestmark = pytest.mark.e2e

APP = """
import os, openai, anthropic
base = os.environ["MOCK_URL"]
oai = openai.OpenAI(base_url=base + "/v1", api_key="sk-proj-envONLYkey000000000000000000000000001")
print(oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
      extra_headers={"x-user-id": "env-app"}).choices[0].message.content)
ant = anthropic.Anthropic(base_url=base, api_key="sk-ant-api03-envONLYkey00000000000000000000002")
print(ant.messages.create(model="claude-sonnet-4-6", max_tokens=20, messages=[{"role": "user",
      "content": "hi"}], extra_headers={"x-user-id": "env-app"}).content[0].text)
"""


def test_sdk_app_unchanged_with_https_proxy_and_ca_bundle(tmp_path: Path):
    with MockLLMServer(tls=True, cert_dir=tmp_path / "mockcerts") as mock, \
            ProxyProcess(store=tmp_path / "store", confdir=tmp_path / "mitm",
                         upstream_ca=Path(mock.ca_cert_path)) as proxy:
        env = {**os.environ, "HTTPS_PROXY": proxy.url, "SSL_CERT_FILE": str(proxy.ca_bundle),
               "MOCK_URL": mock.url, "NO_PROXY": ""}
        env.pop("REQUESTS_CA_BUNDLE", None)
        res = subprocess.run([sys.executable, "-c", APP], env=env, capture_output=True, text=True,
                             timeout=60)
        assert res.returncode == 0, res.stderr[-2000:]
        assert res.stdout.count("Mock reply") == 2
        rows = records(proxy.store, "user_id = 'env-app'", expect=2)
    assert {r["provider"] for r in rows} == {"openai", "anthropic"}
