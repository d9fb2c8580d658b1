"""Starting a W&B run: online failures become one `TrackingError` sentence each, at once.

Online, a missing key or a server that does not answer within `INIT_TIMEOUT` seconds
(`WANDB_INIT_TIMEOUT` overrides) is a `TrackingError` of one sentence, before training starts.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import wandb

from gradient_lab.errors import TrackingError

# Seconds an online run may take to start: W&B's own default (90) is a long wait for a typo in
# WANDB_BASE_URL or a network that is down.
INIT_TIMEOUT = 15
OFFLINE_HINT = (
    "or train offline with WANDB_MODE=offline and upload the run later with "
    "`wandb sync <run folder>`"
)


def start_run(mode: Literal["online", "offline", "disabled"], **init: Any) -> Any:
    """wandb.init, with online failures turned into one sentence each, within INIT_TIMEOUT."""
    if mode == "online" and not wandb.login(prompt=False, verify=False):
        raise TrackingError(
            "W&B is set to log online but finds no API key: run `wandb login` or set "
            f"WANDB_API_KEY, {OFFLINE_HINT}."
        )
    timeout = float(os.environ.get("WANDB_INIT_TIMEOUT") or INIT_TIMEOUT)
    try:
        return wandb.init(mode=mode, settings=wandb.Settings(init_timeout=timeout), **init)
    except wandb.errors.CommError as error:
        server = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
        raise TrackingError(
            f"W&B's server {server} did not answer within {timeout:.0f} s: check the network "
            f"and WANDB_BASE_URL (WANDB_INIT_TIMEOUT waits longer), {OFFLINE_HINT}."
        ) from error
    except wandb.errors.Error as error:
        reason = str(error).strip().splitlines()[0].rstrip(".") if str(error).strip() else ""
        raise TrackingError(f"W&B could not start the run ({reason}): {OFFLINE_HINT}.") from error
