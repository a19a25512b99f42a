"""Lazy public names of a package: ``import gicnet_runtime.core`` costs nothing until a
name is used (so importing the file formats never loads onnxruntime, for instance)."""

from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str]):
    """``(__getattr__, __dir__)`` for a package whose public ``name`` lives in submodule
    ``exports[name]`` (relative to ``package``)."""

    def __getattr__(name: str):
        if name in exports:
            return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
