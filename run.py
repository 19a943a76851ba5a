"""Entry point: `python run.py --help`."""

import sys

from hw1_keras.cli import main

if __name__ == "__main__":
    sys.exit(main())
