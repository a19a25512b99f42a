"""A thin onnxruntime session for one exported GICnet model file.

The session checks the file against the ONNX contract (docs/onnx-contract.md): inputs
``positions`` (B, N, 3) Å, ``velocities`` (B, N, 3) Å/fs and ``times`` (B, K) fs, all
float32; outputs ``positions_t`` and ``velocities_t`` (B, K, N, 3) and, when the
description says ``has_energy``, ``energy_t`` (B, K) eV, each with a leading member
axis (M, ...) in an ensemble file (``n_members``).  Inputs and outputs are addressed by
name.  :meth:`Session.run` always answers with the member axis (M = 1 for a single
network).  Large batches are cut into chunks so that one call's outputs stay under a
memory bound.  On load the metadata is checked (:class:`ModelDescription`) and the graph
is run once on a start built from it (:mod:`gicnet_runtime.core.probe`, ~1-5 ms): a file
whose graph disagrees with its metadata is refused with a one-line ModelError.

Providers: an explicit ``providers=`` list wins; otherwise ``device="cpu"`` is the CPU,
``device="cuda"`` the CUDA provider (an error when it does not work), and
``device="auto"`` the CUDA provider when it truly works, else the CPU, silently.
"Truly works" is decided without onnxruntime's error noise: the CUDA driver must see a
GPU (asked through ``libcuda`` directly), and the session is created with onnxruntime's
logging turned down, then asked which providers it actually got.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import io
import itertools
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from gicnet_runtime.core import probe
from gicnet_runtime.core.contract import (
    ENERGY_T,
    INPUT_NAMES,
    OUTPUT_NAMES,
    POSITIONS_T,
    VELOCITIES_T,
)
from gicnet_runtime.core.description import ModelDescription
from gicnet_runtime.errors import GicnetError, ModelError, one_line

ENERGY_OUTPUT = ENERGY_T
DEVICES = ("auto", "cpu", "cuda")
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
#: Default bound on the outputs of one onnxruntime call, bytes (larger batches are chunked).
MAX_CHUNK_BYTES = 256 * 2**20
#: Bound on the frames (rows x times) of one call on the CPU provider.  The network's
#: intermediates (~16 KB per frame) then stay in the CPU caches: on a Zen 5 core a
#: 1024-frame call runs ~42k frames/s, one of 20480 frames ~12k frames/s (memory-bound
#: element-wise nodes).  GPUs want large calls, so there only the bytes bound applies.
CPU_CHUNK_FRAMES = 1024
_FLOAT32_BYTES = 4
#: onnxruntime log severities: FATAL hides provider-loading errors; WARNING is its default.
_SEVERITY_FATAL = 4
_SEVERITY_DEFAULT = 2
_CUDA_DRIVER_LIBS = ("libcuda.so.1", "libcuda.so", "nvcuda.dll")


@functools.lru_cache(maxsize=1)
def cuda_driver_sees_gpu() -> bool:
    """Whether the CUDA driver is installed and reports at least one GPU (no noise)."""
    for name in _CUDA_DRIVER_LIBS:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return False
        return count.value > 0
    return False


def cuda_available() -> bool:
    """Whether onnxruntime offers the CUDA provider and the driver sees a GPU."""
    return CUDA in ort.get_available_providers() and cuda_driver_sees_gpu()


@functools.lru_cache(maxsize=1)
def _preload_cuda_libraries() -> None:
    """Load CUDA/cuDNN from NVIDIA's pip wheels when present; failures stay quiet here and
    show up as a session without the CUDA provider."""
    if hasattr(ort, "preload_dlls"):
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(Exception):
            ort.preload_dlls()


@contextlib.contextmanager
def _quiet_onnxruntime() -> Iterator[None]:
    """Silence onnxruntime's logger (provider-loading errors) for the block."""
    ort.set_default_logger_severity(_SEVERITY_FATAL)
    try:
        yield
    finally:
        ort.set_default_logger_severity(_SEVERITY_DEFAULT)


def requested_providers(device: str = "auto", providers: Sequence[str] | None = None) -> list[str]:
    """The provider list to ask onnxruntime for; raises GicnetError for an unusable choice."""
    if providers:
        return list(providers)
    if device not in DEVICES:
        raise GicnetError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if device == "cpu":
        return [CPU]
    if device == "cuda" and not cuda_available():
        raise GicnetError("device 'cuda' requested but no usable CUDA GPU was found "
                          "(needs an NVIDIA driver, a GPU and onnxruntime-gpu)")
    if device == "cuda" or cuda_available():
        _preload_cuda_libraries()
        return [CUDA, CPU]
    return [CPU]


class Session:
    """One model file opened with onnxruntime, checked against the gicnet contract.

    Attributes:
        path: the model file.
        description: the model's :class:`ModelDescription` (from its metadata).
        n_members: members in the file (1 for a single network).
        providers: the providers the session actually uses, in priority order.
        max_chunk_bytes: bound on the outputs of one onnxruntime call, bytes.
    """

    def __init__(self, path: str | os.PathLike, *, device: str = "auto",
                 providers: Sequence[str] | None = None, threads: int | None = None,
                 max_chunk_bytes: int = MAX_CHUNK_BYTES, io_binding: bool | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"model file not found: {self.path}")
        wanted = requested_providers(device, providers)
        self._session = _open(self.path, wanted, threads)
        self.providers = list(self._session.get_providers())
        if (providers or device == "cuda") and wanted[0] not in self.providers:
            raise GicnetError(f"{wanted[0]} could not be used for {self.path.name} (missing "
                              f"CUDA/cuDNN libraries?); try device 'cpu'")
        try:
            meta = self._session.get_modelmeta().custom_metadata_map
            try:
                self.description = ModelDescription.from_metadata(meta)
            except ModelError as err:
                raise ModelError(f"{self.path.name}: {err}") from None
            self._outputs = OUTPUT_NAMES + ((ENERGY_OUTPUT,) if self.description.has_energy
                                            else ())
            self._check_contract()
        except UnicodeDecodeError:  # names or metadata of a damaged file
            raise ModelError(f"{self.path.name}: names or metadata are not valid UTF-8"
                             ) from None
        # I/O binding: the outputs are allocated where the graph runs and copied to the host
        # once per call (the CUDA provider); None: on for CUDA, off for the CPU.
        self.io_binding = self.providers[0] == CUDA if io_binding is None else bool(io_binding)
        self.n_members = self.description.members
        self._stacked = self.description.n_members is not None
        self.max_chunk_bytes = int(max_chunk_bytes)
        self.max_chunk_frames = (max(1, CPU_CHUNK_FRAMES // self.n_members)
                                 if self.providers[0] == CPU else None)
        self._probe()

    def _probe(self) -> None:
        """Run the graph once on a start built from the metadata and refuse the file when
        the two disagree (:mod:`gicnet_runtime.core.probe`)."""
        try:
            feed = probe.probe_feed(self.description)
        except ModelError as err:
            raise ModelError(f"{self.path.name}: {err}") from None
        # _run's ModelErrors name the file: failed to run, shapes
        outputs = self._with_member_axis(self._run(feed))
        try:
            probe.check_outputs(self.description, feed, outputs, self.providers[0])
        except ModelError as err:
            raise ModelError(f"{self.path.name}: {err}") from None

    def _check_contract(self) -> None:
        inputs = {i.name: i for i in self._session.get_inputs()}
        outputs = {o.name for o in self._session.get_outputs()}
        for name in INPUT_NAMES:
            if name not in inputs:
                raise ModelError(f"{self.path.name}: model lacks input {name!r}")
            if inputs[name].type != "tensor(float)":
                raise ModelError(f"{self.path.name}: input {name!r} is {inputs[name].type}, "
                                 "expected tensor(float)")
        for name in self._outputs:
            if name not in outputs:
                raise ModelError(f"{self.path.name}: model lacks output {name!r}")
        if ENERGY_OUTPUT in outputs and not self.description.has_energy:
            raise ModelError(f"{self.path.name}: graph has output {ENERGY_OUTPUT!r} but its "
                             "metadata says has_energy false")
        n_atoms = inputs["positions"].shape[1] if len(inputs["positions"].shape) == 3 else None
        if isinstance(n_atoms, int) and n_atoms != self.description.n_atoms:
            raise ModelError(f"{self.path.name}: graph takes {n_atoms} atoms but its "
                             f"description lists {self.description.n_atoms}")

    def run(self, positions: np.ndarray, velocities: np.ndarray,
            times_fs: np.ndarray) -> dict[str, np.ndarray]:
        """Run the graph on validated inputs, in chunks.

        Args:
            positions: (B, N, 3) Å.
            velocities: (B, N, 3) Å/fs.
            times_fs: (B, K) fs, within [0, tc].

        Returns:
            ``positions_t`` and ``velocities_t`` (M, B, K, N, 3) float32 (Å, Å/fs) and,
            when the model has energy, ``energy_t`` (M, B, K) float32 eV; M = n_members.
        """
        pos = np.ascontiguousarray(positions, dtype=np.float32)
        vel = np.ascontiguousarray(velocities, dtype=np.float32)
        times = np.ascontiguousarray(times_fs, dtype=np.float32)
        n_batch, n_atoms = pos.shape[:2]
        n_times, n_members = times.shape[1], self.n_members
        chunks = list(_chunks(n_batch, n_times, n_atoms, self.max_chunk_bytes // n_members,
                              self.max_chunk_frames))
        if len(chunks) == 1:  # one call: its outputs as they come (no copy)
            return self._with_member_axis(self._run({"positions": pos, "velocities": vel,
                                                     "times": times}))
        out = {name: np.empty((n_members, n_batch, n_times, n_atoms, 3), np.float32)
               for name in OUTPUT_NAMES}
        if self.description.has_energy:
            out[ENERGY_OUTPUT] = np.empty((n_members, n_batch, n_times), np.float32)
        for rows, cols in chunks:
            feed = {"positions": pos[rows], "velocities": vel[rows], "times": times[rows, cols]}
            for name, value in self._with_member_axis(self._run(feed)).items():
                out[name][:, rows, cols] = value
        return out

    def _with_member_axis(self, values: list[np.ndarray]) -> dict[str, np.ndarray]:
        """One call's outputs by name, each with the member axis first (M = 1 added for a
        single network's file)."""
        return {name: value if self._stacked else value[None]
                for name, value in zip(self._outputs, values, strict=True)}

    def _run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            values = self._bound_run(feed) if self.io_binding else \
                self._session.run(list(self._outputs), feed)
        except Exception as err:  # noqa: BLE001 (onnxruntime raises unrelated exception types)
            raise ModelError(f"{self.path.name} failed to run: {one_line(err)}") from None
        n_batch, n_times = feed["times"].shape
        members = (self.n_members,) if self._stacked else ()
        expected = {POSITIONS_T: (*members, n_batch, n_times, *feed["positions"].shape[1:]),
                    VELOCITIES_T: (*members, n_batch, n_times, *feed["positions"].shape[1:]),
                    ENERGY_OUTPUT: (*members, n_batch, n_times)}
        for name, value in zip(self._outputs, values, strict=True):
            if value.shape != expected[name]:
                raise ModelError(f"{self.path.name}: output {name!r} has shape {value.shape}, "
                                 f"expected {expected[name]}")
        return values


    def _bound_run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One call through an onnxruntime I/O binding: host inputs, outputs on the
        provider's device, copied back together."""
        device = "cuda" if self.providers[0] == CUDA else "cpu"
        binding = self._session.io_binding()
        for name, value in feed.items():
            binding.bind_cpu_input(name, value)
        for name in self._outputs:
            binding.bind_output(name, device)
        self._session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()


def _open(path: Path, providers: list[str], threads: int | None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    if threads is not None:
        if threads < 1:
            raise GicnetError(f"threads must be a positive number, got {threads}")
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    try:
        with _quiet_onnxruntime():
            return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as err:  # noqa: BLE001 (InvalidProtobuf, Fail, ...: all a bad file)
        raise ModelError(f"cannot load model {path}: {one_line(err)}") from None


def _chunks(n_batch: int, n_times: int, n_atoms: int, max_bytes: int,
            max_frames: int | None = None) -> Iterator[tuple[slice, slice]]:
    """(rows, times) slices whose outputs stay under ``max_bytes`` and, when given, whose
    rows x times stay under ``max_frames`` (at least one row and one time each); the rows
    are shared out evenly between the chunks (no small remainder call)."""
    per_time = (2 * n_atoms * 3 + 1) * _FLOAT32_BYTES
    times_step = max(1, min(n_times, max_bytes // per_time))
    rows_step = max(1, max_bytes // (per_time * times_step))
    if max_frames is not None:
        times_step = max(1, min(times_step, max_frames))
        rows_step = max(1, min(rows_step, max_frames // times_step))
    n_row_chunks = -(-n_batch // rows_step)
    if n_row_chunks == 0:
        return
    bounds = [k * n_batch // n_row_chunks for k in range(n_row_chunks + 1)]
    for b0, b1 in itertools.pairwise(bounds):
        for k0 in range(0, n_times, times_step):
            yield slice(b0, b1), slice(k0, k0 + times_step)


