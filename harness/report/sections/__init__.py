"""The sections of the markdown report, one module each (harness.report.markdown assembles them)."""
