"""What the kokoro model's process holds before it loads any weights: its imports.

The kokoro Triton model imports ``pattern_tts.synthesis.engine``, which loads ``KModel`` without
Kokoro's text pipeline (pattern_tts/synthesis/kokoro_model.py). The baseline is what it imported
before: the same engine after ``import kokoro``, whose ``__init__`` also imports ``KPipeline`` and
with it misaki, spaCy and phonemizer. Each variant runs in a fresh interpreter, the two alternating, ``--rounds`` times:
the resident memory after ``import torch`` (which both need), then after the variant's import, and
whether spaCy's libraries are mapped.

    .venv/bin/python -m bench.kokoro_imports [--rounds 5]

Writes ``bench/results/kokoro-imports-<date>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = {  # the baseline imports Kokoro's package first, as the engine did before
    "engine after `import kokoro` (before)": "import kokoro; import pattern_tts.synthesis.engine",
    "engine, KModel alone (now)": "import pattern_tts.synthesis.engine",
}

CHILD = r"""
import json, sys

def resident_mib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS"))

import torch
after_torch = resident_mib()
modules = len(sys.modules)
exec(sys.argv[1])
with open("/proc/self/maps") as maps:
    spacy = any("/spacy/" in line for line in maps)
print(json.dumps({"torch_mib": after_torch, "import_mib": resident_mib() - after_torch,
                  "modules": len(sys.modules) - modules, "spacy_mapped": spacy}))
"""


def measure(statement: str) -> dict[str, Any]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, statement], env=env, stdout=subprocess.PIPE, text=True, check=True
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from bench.run import git_state, machine

    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    for round_ in range(args.rounds):
        order = list(VARIANTS) if round_ % 2 == 0 else list(reversed(VARIANTS))
        for name in order:
            runs[name].append(measure(VARIANTS[name]))
    summary = {
        name: {
            "import_mib": round(statistics.median(r["import_mib"] for r in rows), 1),
            "torch_mib": round(statistics.median(r["torch_mib"] for r in rows), 1),
            "modules": statistics.median(r["modules"] for r in rows),
            "spacy_mapped": all(r["spacy_mapped"] for r in rows),
        }
        for name, rows in runs.items()
    }
    results = {
        "date": dt.date.today().isoformat(), "git": git_state(), "machine": machine(),
        "rounds": args.rounds, "summary": summary, "runs": runs,
    }  # fmt: skip

    print(f"\nResident memory an import adds after `import torch`, median of {args.rounds} fresh interpreters")
    print(f"{'variant':<52} {'MiB':>7} {'modules':>8} {'spaCy':>6}")
    for name, row in summary.items():
        print(f"{name:<52} {row['import_mib']:>7} {row['modules']:>8.0f} {str(row['spacy_mapped']):>6}")
    out = args.out or RESULTS / f"kokoro-imports-{results['date']}.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
