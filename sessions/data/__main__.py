"""`python -m sessions.data pull|push|status|ensure|dvc [options]` (what the session runs)."""

import sys

from sessions.data.session import main

try:
    sys.exit(main())
except KeyboardInterrupt:
    # Ctrl-C (e.g. during `train-tracked`'s data check): one line, not a traceback.
    print("Stopped by Ctrl-C (SIGINT); run the same command again to finish.", file=sys.stderr)
    sys.exit(130)
