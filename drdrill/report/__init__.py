"""The report's human and CI formats, rendered from the report model (``drdrill.core.report``):
report.md, report.html (templates/), junit.xml, cucumber alignment, PDF, the history line and
its checks (writer), and the views the templates read (views). May import ``drdrill.evidence``,
``drdrill.core`` and ``drdrill.errors``."""
