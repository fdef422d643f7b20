"""The bundled mock LLM server (OpenAI and Anthropic shaped) used by the demo, tests and benchmarks.

    from llm_proxy.mock import MockLLMServer

    with MockLLMServer() as server:  # HTTPS on 127.0.0.1, a free port, a private CA
        http = openai.DefaultHttpxClient(verify=server.client_ssl_context())
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-test", http_client=http)

Failures are chosen per request with the `x-mock-scenario` header; see `SCENARIOS`.
"""

from llm_proxy.mock.server import SCENARIOS, MockLLMServer, Scenario, parse_scenarios, run_forever

__all__ = ["SCENARIOS", "MockLLMServer", "Scenario", "parse_scenarios", "run_forever"]
