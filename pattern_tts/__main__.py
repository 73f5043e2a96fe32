"""``python -m pattern_tts`` is the ``pattern-tts`` command."""

import sys

from pattern_tts.cli import main

sys.exit(main())
