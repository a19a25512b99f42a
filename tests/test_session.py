"""The onnxruntime session: contract checks, bad files, providers, chunking."""

import numpy as np
import pytest

from gicnet_runtime.core.session import CPU, Session, _chunks, cuda_available
from gicnet_runtime.errors import GicnetError, ModelError
from tests.onnx_fixtures import (
    ETHANOL_POSITIONS_A,
    description,
    identity_model,
    thermal_velocities,
    write_model,
)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("session") / "free.onnx")


def test_opens_and_reads_the_description(model_path):
    session = Session(model_path, device="cpu", threads=1)
    assert session.providers == [CPU]
    assert session.description == description()


def test_auto_device_is_silent_and_falls_back_to_cpu(model_path, capfd):
    session = Session(model_path, device="auto")
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""
    if not cuda_available():
        assert session.providers == [CPU]


def test_cuda_without_a_gpu_is_a_one_line_error(model_path):
    if cuda_available():
        pytest.skip("a CUDA GPU is present")
    with pytest.raises(GicnetError, match="no usable CUDA GPU") as err:
        Session(model_path, device="cuda")
    assert "\n" not in str(err.value)


def test_explicit_providers_win(model_path):
    assert Session(model_path, device="cuda", providers=[CPU]).providers == [CPU]


@pytest.mark.parametrize("content, message", [
    (b"this is not an onnx file", "cannot load model"),
    (None, "cannot load model"),  # truncated
])
def test_corrupted_files_raise_model_error(tmp_path, model_path, content, message):
    bad = tmp_path / "bad.onnx"
    data = model_path.read_bytes()
    bad.write_bytes(content if content is not None else data[: len(data) // 2])
    with pytest.raises(ModelError, match=message):
        Session(bad, device="cpu")


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        Session(tmp_path / "nope.onnx")


def test_foreign_onnx_without_metadata(tmp_path):
    with pytest.raises(ModelError, match="no gicnet metadata"):
        Session(identity_model(tmp_path / "foreign.onnx"), device="cpu")


def test_model_lacking_an_output(tmp_path):
    path = identity_model(tmp_path / "partial.onnx", description().to_metadata())
    with pytest.raises(ModelError, match="lacks output 'velocities_t'"):
        Session(path, device="cpu")


def test_chunks_cover_every_row_and_time_once():
    seen = np.zeros((7, 5), dtype=int)
    for rows, cols in _chunks(7, 5, 9, max_bytes=500):
        seen[rows, cols] += 1
    np.testing.assert_array_equal(seen, 1)


@pytest.mark.parametrize(("n_batch", "n_times", "max_frames"),
                         [(7, 5, 12), (256, 20, 1024), (3, 40, 16), (1, 1, 1), (0, 3, 8)])
def test_chunks_bounded_by_frames_are_even(n_batch, n_times, max_frames):
    seen = np.zeros((n_batch, n_times), dtype=int)
    sizes = set()
    for rows, cols in _chunks(n_batch, n_times, 9, 10**9, max_frames):
        seen[rows, cols] += 1
        size = seen[rows, cols].size
        assert size <= max_frames
        sizes.add(len(range(*rows.indices(n_batch))))
    np.testing.assert_array_equal(seen, 1)
    assert max(sizes, default=0) - min(sizes, default=0) <= 1


def test_chunked_run_equals_one_call(model_path):
    rng = np.random.default_rng(0)
    pos = ETHANOL_POSITIONS_A + rng.normal(0, 0.05, (6, 9, 3))
    vel = thermal_velocities(1, count=6)
    times = rng.uniform(0, 10, (6, 4))
    whole = Session(model_path, device="cpu").run(pos, vel, times)
    small = Session(model_path, device="cpu", max_chunk_bytes=1000).run(pos, vel, times)
    for name in whole:
        np.testing.assert_array_equal(small[name], whole[name])
    assert whole["positions_t"].shape == (1, 6, 4, 9, 3)  # member axis first, M = 1
    np.testing.assert_allclose(whole["positions_t"][0],
                               pos[:, None] + vel[:, None] * times[..., None, None], atol=1e-5)


def test_io_binding_gives_the_same_outputs(model_path):
    """The CUDA path's I/O binding, run on the CPU provider (CI has no GPU)."""
    rng = np.random.default_rng(1)
    pos = ETHANOL_POSITIONS_A + rng.normal(0, 0.05, (5, 9, 3))
    vel = thermal_velocities(2, count=5)
    times = rng.uniform(0, 10, (5, 7))
    plain = Session(model_path, device="cpu")
    bound = Session(model_path, device="cpu", io_binding=True, max_chunk_bytes=2000)
    assert not plain.io_binding and bound.io_binding
    want, got = plain.run(pos, vel, times), bound.run(pos, vel, times)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])
