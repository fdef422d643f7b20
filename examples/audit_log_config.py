"""The seed integration example, verbatim: an AuditConfig for a compliance-minded deployment.

Usage: llm-audit proxy --config examples/audit_log_config.py
"""

from llm_proxy.audit import AuditConfig, LogExporter

config = AuditConfig(log_requests=True, log_responses=True, log_errors=True, log_security=True,
    retention_days=2555, archive_after=90, redact_pii=True,
    redact_headers=["authorization", "api-key"],
    exporters=[LogExporter("elasticsearch", endpoint="http://logs.company.com"),
               LogExporter("s3", bucket="audit-logs-backup")])
