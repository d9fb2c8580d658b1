"""The `data` session: DVC-versioned data and weights, pulled, pushed, checked or regenerated.

`session` is the session and its command line (`python -m sessions.data`), with `ensure_data`,
what training calls before it reads the data; `sync` reports `push`, `pull` and `status`
output by output; `dvc` opens DVC's Python API (what the session reads: return values,
exception types, status dictionaries), runs its command line (what the user reads) and turns
its failures into one sentence.
"""
