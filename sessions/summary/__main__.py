"""`python -m sessions.summary --to docx,pdf --input FILE --out DIR [--report PATH]`."""

import sys

from sessions.summary.cli import main

sys.exit(main())
