"""latentbridge entry point: `python main.py --mode train --preset tiny`; see `--help`.

The same command is installed as the `latentbridge` console script. Running from a checkout puts
this checkout's `src/` first, so `python main.py` always runs the code beside it."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from latentbridge.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
