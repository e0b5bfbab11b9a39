"""`python -m train.cli_entry ...` = edge-train (for torchrun, which launches modules)."""

import sys

from .cli import edge_train_main

sys.exit(edge_train_main())
