"""``whisperd`` with the fake engine registered: ``python -m tests.e2e.fake_whisperd run -c F``.

The real CLI, service, decoding and outputs; only recognition is the fake (tests/fake_engine.py),
registered by the test suite rather than by anything in the daemon package.
"""

import sys

from daemon.cli import main
from tests.fake_engine import install

install()
sys.exit(main())
