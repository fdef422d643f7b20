"""Which hosts are LLM APIs, and which provider a (host, path) belongs to.

The host table lives here once: the proxy uses it to decide which TLS connections to
intercept (everything else is tunnelled untouched), and the parsers use it to pick a
provider. ``is_llm_host`` runs for every connection, so patterns are compiled once into an
exact-name set and a short tuple of (prefix, suffix) wildcards.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

__all__ = [
    "KNOWN_LLM_HOSTS",
    "HOST_PROVIDERS",
    "is_llm_host",
    "host_provider",
    "detect_provider",
    "normalise_host",
    "path_provider",
    "is_anthropic_path",
]

# pattern -> provider. A pattern is an exact host name or contains one "*", which matches
# one or more characters (so "*.openai.azure.com" covers any resource sub-domain and
# "bedrock-runtime.*.amazonaws.com" any region).
HOST_PROVIDERS: dict[str, str] = {
    "api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "*.openai.azure.com": "azure_openai",
    "*.cognitiveservices.azure.com": "azure_openai",
    "*.services.ai.azure.com": "azure_openai",
    "generativelanguage.googleapis.com": "gemini",
    "aiplatform.googleapis.com": "gemini",
    "*-aiplatform.googleapis.com": "gemini",
    "api.mistral.ai": "mistral",
    "codestral.mistral.ai": "mistral",
    "api.groq.com": "groq",
    "openrouter.ai": "openrouter",
    "api.deepseek.com": "deepseek",
    "api.x.ai": "xai",
    "api.together.xyz": "together",
    "api.together.ai": "together",
    "api.fireworks.ai": "fireworks",
    "api.cohere.com": "cohere",
    "api.cohere.ai": "cohere",
    "bedrock-runtime.*.amazonaws.com": "bedrock",
    "bedrock-runtime-fips.*.amazonaws.com": "bedrock",
}

KNOWN_LLM_HOSTS: tuple[str, ...] = tuple(HOST_PROVIDERS)

type _Compiled = tuple[frozenset[str], tuple[tuple[str, str], ...]]


def normalise_host(host: object) -> str:
    """Lower-case host without port, brackets or trailing dot ("API.OpenAI.com:443." → …)."""
    if not isinstance(host, str) or not host:
        return ""
    host = host.strip().lower()
    if host.startswith("["):  # [v6addr]:port
        return host[1 : host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def _compile(patterns: Iterable[str]) -> _Compiled:
    exact: set[str] = set()
    wild: list[tuple[str, str]] = []
    for pattern in patterns:
        if not isinstance(pattern, str):
            continue
        pattern = pattern.strip().lower().rstrip(".")
        if not pattern:
            continue
        if "*" in pattern:
            prefix, _, suffix = pattern.partition("*")
            wild.append((prefix, suffix.replace("*", "")))
        else:
            exact.add(pattern)
    return frozenset(exact), tuple(wild)


def _wild(host: str, prefix: str, suffix: str) -> bool:
    """``prefix*suffix`` with a non-empty ``*``."""
    return (
        len(host) > len(prefix) + len(suffix)
        and host.endswith(suffix)
        and host.startswith(prefix)
    )


def _matches(host: str, compiled: _Compiled) -> bool:
    exact, wild = compiled
    return host in exact or any(_wild(host, prefix, suffix) for prefix, suffix in wild)


_KNOWN = _compile(KNOWN_LLM_HOSTS)
_PROVIDER_BY_EXACT = {p: v for p, v in HOST_PROVIDERS.items() if "*" not in p}
_PROVIDER_WILD = tuple(
    (_compile([p])[1][0], v) for p, v in HOST_PROVIDERS.items() if "*" in p
)


@lru_cache(maxsize=64)
def _compiled_extra(extra: tuple[str, ...]) -> _Compiled:
    return _compile(extra)


def is_llm_host(host: str, extra: Iterable[str] = ()) -> bool:
    """True when ``host`` is a known LLM API host or matches one of the ``extra`` patterns
    (exact names or ``*`` wildcards such as ``*.internal.example.com``)."""
    name = normalise_host(host)
    if not name:
        return False
    if _matches(name, _KNOWN):
        return True
    if not extra:
        return False
    key = extra if isinstance(extra, tuple) else tuple(extra)
    try:
        compiled = _compiled_extra(key)
    except TypeError:  # unhashable items: compile without the cache
        compiled = _compile(key)
    return _matches(name, compiled)


def host_provider(host: str) -> str | None:
    """The provider a known host belongs to, or ``None``."""
    name = normalise_host(host)
    known = _PROVIDER_BY_EXACT.get(name)
    if known:
        return known
    for (prefix, suffix), provider in _PROVIDER_WILD:
        if _wild(name, prefix, suffix):
            return provider
    return None


# Path shapes for hosts we do not know (a local vLLM, an internal gateway, a mock server).
_BEDROCK_PATH = re.compile(
    r"/model/[^/]+/(?:invoke|invoke-with-response-stream|converse|converse-stream|count-tokens)$"
)
_GEMINI_PATH = re.compile(r"/(?:models|tunedModels)/[^/:]+:[A-Za-z]+$")
_ANTHROPIC_PATH = re.compile(r"/v1/(?:messages(?:/count_tokens|/batches(?:/.*)?)?|complete)$")
_VERTEX_ANTHROPIC = "/publishers/anthropic/"
_OPENAI_TAILS = (
    "/chat/completions",
    "/completions",
    "/embeddings",
    "/responses",
    "/models",
    "/moderations",
    "/images/generations",
    "/images/edits",
    "/audio/transcriptions",
    "/audio/translations",
    "/audio/speech",
    "/responses/input_tokens",
)
_OPENAI_INNER = re.compile(r"/(?:responses|models|chat/completions)/[^/:]+(?:/[a-z_]+)?$")


def is_anthropic_path(endpoint: str) -> bool:
    """A Messages-API path (``…/v1/messages``, ``…/v1/complete``), wherever it is served."""
    return _ANTHROPIC_PATH.search(endpoint) is not None


def path_provider(endpoint: str) -> str:
    """The provider an API path looks like: its request/response shapes, not its vendor."""
    if _BEDROCK_PATH.search(endpoint):
        return "bedrock"
    if _GEMINI_PATH.search(endpoint):
        return "gemini"
    if _ANTHROPIC_PATH.search(endpoint):
        return "anthropic"
    if endpoint.endswith(_OPENAI_TAILS) or _OPENAI_INNER.search(endpoint):
        return "openai"
    return "unknown"


def detect_provider(host: str, path: str) -> str:
    """The provider of an exchange: by host when known, else by the shape of the path.

    Claude on Vertex AI (``…/publishers/anthropic/…``) is reported as "anthropic": its
    bodies, models and prices are Anthropic's even though the host is Google's.
    """
    endpoint = path.partition("?")[0] if isinstance(path, str) else ""
    provider = host_provider(host)
    if provider is not None:
        if provider == "gemini" and _VERTEX_ANTHROPIC in endpoint:
            return "anthropic"
        return provider
    return path_provider(endpoint)
