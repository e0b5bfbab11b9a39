"""docs/ACCURACY.md's table of the object set's runs (../runs_table.py).

    python3 report.py default default_s1 p512_stem4 p512_stem4_s1
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from runs_table import compact  # noqa: E402

if __name__ == "__main__":
    compact(HERE, sys.argv[1:] or ["default", "default_s1"])
