"""Run every benchmark (``python -m bench`` / ``make bench``), one subprocess each.

Each script measures its own baseline in the same run (raw mosquitto round trip, etcd,
plain faster-whisper) and prints medians and ratios, never a lone absolute time.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    here = Path(__file__).resolve().parent
    scripts = sorted(here.glob("bench_*.py"))
    if len(sys.argv) > 1:
        scripts = [s for s in scripts if any(a in s.name for a in sys.argv[1:])]
    failures = 0
    for script in scripts:
        print(f"\n=== {script.name} ===", flush=True)
        start = time.monotonic()
        code = subprocess.call([sys.executable, str(script)], cwd=here.parent)
        print(f"--- {script.name}: exit {code} after {time.monotonic() - start:.0f} s", flush=True)
        failures += code != 0
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
