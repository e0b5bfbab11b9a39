"""docs/ACCURACY.md's tables of runs in this folder (../runs_table.py, the longer form).

    python3 report.py                        # the four methods
    python3 report.py unet_soft5 unet_tuned  # any runs, by config name
    python3 report.py default_60:-5min       # a run's snapshot (model-5min.onnx, eval-5min/)
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from runs_table import wide  # noqa: E402

if __name__ == "__main__":
    wide(HERE, sys.argv[1:] or ["cae001", "renet_d", "skip_ae", "unet"])
