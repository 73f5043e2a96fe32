"""`python -m pattern_tts.weights prepare|check ...`."""

from pattern_tts.weights.cli import main

raise SystemExit(main())
