"""The ``gicnet`` command from a source checkout: ``python cli.py COMMAND ...``.

The command line itself lives in :mod:`gicnet_runtime.cli` (one module per command; the
training commands come from :mod:`gicnet_train.cli`).  The installed console script
``gicnet`` runs the same group; this file is not installed, so the wheel claims no
top-level module named ``cli``.
"""

from gicnet_runtime.cli import main

if __name__ == "__main__":
    main()
