"""Where the shipped trained models are, in a wheel install and in the source tree.

The source tree keeps them in ``exported/NAME/`` at its top; the wheel carries the same
folders as package data, installed as ``gicnet_runtime/shipped/NAME/`` (pyproject.toml maps
one onto the other).  The installed copy is looked for first, so an installed gicnet finds
its models from any working directory without the source tree.
"""

from __future__ import annotations

from pathlib import Path

#: The model the commands use when none is given.
DEFAULT_MODEL = "ethanol"
#: Package data of a wheel (non-editable) install.
INSTALLED_DIR = Path(__file__).resolve().parent.parent / "shipped"
#: The source tree's folder (editable installs and checkouts).
SOURCE_DIR = Path(__file__).resolve().parents[2] / "exported"


def shipped_dir() -> Path:
    """The folder that holds the shipped models' folders (the installed one if present)."""
    return INSTALLED_DIR if INSTALLED_DIR.is_dir() else SOURCE_DIR


def shipped_model(name: str = DEFAULT_MODEL) -> Path:
    """The folder of shipped model ``name`` (it may not exist: check ``is_dir()``)."""
    return shipped_dir() / name


def shipped_names() -> list[str]:
    """Names of the shipped models (folders holding at least one ``.onnx`` file)."""
    root = shipped_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.onnx")))
