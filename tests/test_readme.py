"""README.md stays true: its settings table is the settings class, its two commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from pattern_tts.settings import settings_table

README = Path(__file__).resolve().parent.parent / "README.md"


def test_settings_table_matches_the_settings_class() -> None:
    text = README.read_text()
    match = re.search(r"<!-- settings-table:[^>]*-->\n(.*?)\n<!-- /settings-table -->", text, re.DOTALL)
    assert match, "README.md has no settings table markers"
    assert match.group(1).strip() == settings_table().strip(), "run: python -m pattern_tts.settings"


def test_the_two_setup_commands_exist_and_ci_runs_the_test_one() -> None:
    text = README.read_text()
    root = README.parent
    for command in ("bash scripts/serve.sh", "bash scripts/test.sh"):
        assert command in text
        assert (root / command.split()[1]).is_file()
    assert "scripts/test.sh" in (root / ".ci" / "run").read_text()
