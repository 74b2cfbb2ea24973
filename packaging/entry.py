"""PyInstaller's entry script: the same ``main`` as the ``familylog-tray`` console script."""

import sys

from app.main import main

if __name__ == "__main__":
    sys.exit(main())
