"""latentbridge entry point: `python main.py --mode train --preset tiny`; see `--help`."""

from src.cli import main

if __name__ == "__main__":
    main()
