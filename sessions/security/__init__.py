"""The `security` gate (Rule 6): bandit, safety and detect-secrets, judged by one policy.

`session` is the session: it installs the scanners, runs the three scans side by side and
prints the verdict. `bandit`, `safety` and `secrets` each run one scanner and read its report;
`policy` reads `security-policy.toml` and judges findings against its acceptances; `tools`
finds and runs a scanner; `advisories` builds safety's offline database from PyPA's advisories
(`-- --update-db DIR`, or `python -m sessions.security.advisories`).
"""
