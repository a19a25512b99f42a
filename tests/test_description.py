"""Metadata that is written is checked when read: the units, the dummy points and the
frame a file declares must be the ones gicnet's graphs implement; the contract's names
come from one module."""

import dataclasses
import json

import pytest

from gicnet_runtime.core import contract
from gicnet_runtime.core.description import ModelDescription
from gicnet_runtime.core.icdef import DUMMY_POINTS_A
from gicnet_runtime.errors import ModelError
from tests.onnx_fixtures import description


def _props(**changes) -> dict[str, str]:
    props = description().to_metadata()
    props.update({contract.METADATA_PREFIX + k: json.dumps(v) for k, v in changes.items()})
    return props


def test_written_metadata_reads_back_equal():
    desc = description()
    assert ModelDescription.from_metadata(desc.to_metadata()) == dataclasses.replace(desc)
    assert json.loads(desc.to_metadata()["gicnet.units"]) == contract.UNITS
    assert desc.dummy_points_A == DUMMY_POINTS_A and desc.frame == contract.BODY_FRAME


@pytest.mark.parametrize("changes, message", [
    ({"units": dict(contract.UNITS, positions="bohr")}, "declares units"),
    ({"dummy_points_A": [[0, 0, 0], [0, 0, 2], [1, 0, 1]]}, "differ from the dummy points"),
    ({"frame": "lab"}, "the only one gicnet implements"),
    ({"provenance": [1, 2]}, "JSON objects"),
])
def test_metadata_that_contradicts_the_graph_is_refused(changes, message):
    with pytest.raises(ModelError, match=message):
        ModelDescription.from_metadata(_props(**changes))


def test_the_exporter_and_the_runtime_share_the_contract_names():
    pytest.importorskip("torch")
    from gicnet_runtime.core import session
    from gicnet_train import ensemble_graph, export

    assert export.INPUTS == session.INPUT_NAMES == contract.INPUT_NAMES
    assert export.OUTPUTS == ensemble_graph.OUTPUTS == contract.ALL_OUTPUT_NAMES
