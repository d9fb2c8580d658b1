"""The `report` session: what a change does to the training, against a git ref.

compare   the ref (in GitHub Actions, the event's), DVC's repro of stale stages, and DVC's
          params/metrics/plots diffs
figures   loss curves, per-layer gradient norms and the first-to-last ratio, old vs new
markdown  build/report/REPORT.md: changed parameters, metrics table, figures; COMMENT.md, the
          same for a pull-request comment and the job summary, each figure a line
__main__  the report put in place whole, and appended to GitHub's job summary
session   the nox session: `nox -s report [-- REF]`
"""


class ReportError(Exception):
    """The report cannot be made; the message is one sentence saying why and what to do."""
