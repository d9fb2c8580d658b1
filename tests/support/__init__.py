"""What the tests use and pytest never collects: plugins, servers, project copies, readers.

`tiers` (the two test tiers and the hermetic check) and `schedule` (how the full gate shares
the cores) are pytest plugins that conftest.py registers; `project_copy` builds the private
copies of the project that nested sessions and planted faults work in; `dvc_repo`,
`s3_server`, `cutting_proxy` and `data_cli` are the data tests' repositories, S3 server,
byte-counting proxy and session commands; `wandb_runs` reads offline W&B runs back from disk;
`distributed_stop` is a torchrun script the interrupt tests stop.
"""
