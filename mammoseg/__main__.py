"""``python -m mammoseg``: the ``mammoseg`` command, for environments without the script on
PATH (a notebook's kernel, a venv that is not activated).

Example:
    $ python -m mammoseg --version
"""

import sys

from mammoseg.cli import main

if __name__ == "__main__":
    sys.exit(main())
