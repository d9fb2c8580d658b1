"""`python -m sessions.summary --to docx,pdf --input FILE --out DIR`."""

import sys

from sessions.summary.cli import main

sys.exit(main())
