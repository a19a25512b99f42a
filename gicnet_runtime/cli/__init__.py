"""The ``gicnet`` command: a thin click group, one module per command.

Each command parses its options, calls the library and reports.  Library modules are
imported inside the commands, so ``gicnet --help`` and the runtime commands never import
torch.  Commands of other layers (training and export, in ``gicnet_train.cli``) join the
group through the ``gicnet.commands`` entry points of the installed distribution, so this
package never imports the training package.  Errors the user can fix
(:class:`gicnet_runtime.GicnetError`) are printed as one line on stderr with exit code 1,
never as a traceback.
"""

from __future__ import annotations

import sys
from importlib import metadata

import click

from gicnet_runtime.cli.evaluate import evaluate
from gicnet_runtime.cli.explain import explain
from gicnet_runtime.cli.info import info
from gicnet_runtime.cli.predict import predict
from gicnet_runtime.cli.propagate import propagate
from gicnet_runtime.cli.simulate import simulate
from gicnet_runtime.cli.spectrum import spectrum
from gicnet_runtime.errors import GicnetError, Interrupted, one_line

#: Entry-point group through which other packages add commands.
COMMAND_GROUP = "gicnet.commands"
#: Exit status of an interrupted command (128 + SIGINT).
EXIT_INTERRUPTED = 130

__all__ = ["COMMAND_GROUP", "main"]


def report_error(message: str) -> None:
    """Print ``message`` as gicnet's one-line error on stderr."""
    click.echo(f"gicnet: error: {one_line(message)}", err=True)


class _Group(click.Group):
    """A click group that turns the project's own errors into one line on stderr, and
    whose commands from other packages (entry points) are loaded only when named."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(_plugin_points()))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        point = _plugin_points().get(name)
        return None if point is None else point.load()

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Interrupted as err:
            click.echo(f"gicnet: {one_line(str(err))}", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except GicnetError as err:
            report_error(str(err))
            sys.exit(1)
        except click.UsageError as err:
            report_error(err.format_message())
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("gicnet: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gicnet")
def main() -> None:
    """gicnet: 4D-spacetime atomistic AI models of molecular dynamics.

    Units everywhere: positions Å, time fs, velocities Å/fs, masses amu, energies eV.
    """


for _command in (predict, propagate, info, simulate, spectrum, evaluate, explain):
    main.add_command(_command)


def _plugin_points() -> dict[str, metadata.EntryPoint]:
    """Commands other installed packages register under ``COMMAND_GROUP``, by name (not
    loaded)."""
    try:
        return {point.name: point for point in metadata.entry_points(group=COMMAND_GROUP)}
    except Exception:  # noqa: BLE001  (broken metadata must not break the runtime commands)
        return {}
