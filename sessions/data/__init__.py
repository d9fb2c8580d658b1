"""The `data` session: DVC-versioned data and weights, pulled, pushed, checked or regenerated.

`session` is the session and its command line (`python -m sessions.data`), with `ensure_data`,
what training calls before it reads the data; `sync` reports `push`, `pull` and `status` output
by output from the records; `dvc` runs DVC's command line and turns its failures into one
sentence.
"""
