"""Load the audit addon into a plain mitmdump.

Usage: mitmdump -s "$(python -c 'import llm_proxy.addon as a; print(a.SCRIPT)')" --set audit_store=./audit
"""

from llm_proxy.addon.capture import AuditAddon

addons = [AuditAddon()]
