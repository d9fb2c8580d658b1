"""The `report` session: what a change does to the training, against a git ref.

compare   the ref, DVC's repro of stale stages, and DVC's params/metrics/plots diffs
figures   loss curves, per-layer gradient norms and the first-to-last ratio, old vs new
markdown  build/report/REPORT.md: changed parameters, metrics table, figures
github    the report in a job summary and one pull-request comment, kept up to date
session   the nox session: `nox -s report [-- REF]`
"""


class ReportError(Exception):
    """The report cannot be made; the message is one sentence saying why and what to do."""
