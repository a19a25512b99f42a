"""The `gicnet` command line: a thin click group.

Each command parses its options, calls the library and reports.  Library
modules are imported inside the commands so that `gicnet --help` and the
runtime commands never import torch.  Errors the user can fix
(:class:`gicnet_runtime.GicnetError`) are printed as one line on stderr with exit
code 1, never as a traceback.
"""

from __future__ import annotations

import sys

import click

from gicnet_runtime.errors import GicnetError


class _Group(click.Group):
    """A click group that turns the project's own errors into one line on stderr."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except GicnetError as err:
            click.echo(f"gicnet: error: {err}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("gicnet: interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gicnet")
def main() -> None:
    """gicnet: 4D-spacetime atomistic AI models of molecular dynamics.

    Units everywhere: positions Å, time fs, velocities Å/fs, masses amu, energies eV.
    """


# --- commands are added below, one function each ---------------------------


if __name__ == "__main__":
    main()
