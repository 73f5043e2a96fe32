"""Regenerate the Parameters section of README.md from the `## @param` comments of values.yaml.

    python helm/pattern-tts/hack/readme.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parent.parent
MARKER = "## Parameters\n"


def parameters_table(values_text: str) -> str:
    values = yaml.safe_load(values_text)
    out: list[str] = []
    for line in values_text.splitlines():
        if m := re.match(r"\s*## @section (.*)", line):
            out.append(f"\n### {m.group(1)}\n\n| Name | Description | Default |\n|---|---|---|")
        elif m := re.match(r"\s*## @param (\S+) (.*)", line):
            node = values
            for part in m.group(1).split("."):
                node = node[part]
            default = f'"{node}"' if isinstance(node, str) else json.dumps(node)
            out.append(f"| `{m.group(1)}` | {m.group(2).replace('|', chr(92) + '|')} | `{default}` |")
    return "\n".join(out) + "\n"


def main() -> None:
    readme = CHART / "README.md"
    head = readme.read_text().split(MARKER)[0]
    readme.write_text(head + MARKER + parameters_table((CHART / "values.yaml").read_text()))


if __name__ == "__main__":
    main()
