"""llm-proxy-audit: an audit trail for every LLM API call.

Capture (``llm_proxy.addon``) → store (``llm_proxy.store``) → CLI (``llm_proxy.cli``).
"""

__version__ = "0.1.0"
