"""Validated files: what a file claims must fit in the file, checked before it is parsed.

A few bytes can claim two billion atoms (an extended XYZ count line), an array of
terabytes (an npz or ASE .traj header, an unwritten HDF5 dataset) or JSON nested
thousands of levels deep.  The readers call the checks here *before* handing a file to
its parser (ASE, h5py, numpy), so that the work and memory a file can cause are bounded
by its size; a claim the file cannot hold is one line of
:class:`~gicnet_runtime.errors.InputError`.  JSON is bounded by
:mod:`gicnet_runtime.jsonsafe`.

The bounds are lower bounds on what a valid file needs: an atom line of extended XYZ
holds at least one character and a line end (:data:`MIN_XYZ_ATOM_LINE_CHARS`), no
molecule has more than :data:`MAX_ATOMS` atoms, and compressed data expands at most
:data:`MAX_EXPANSION`-fold (deflate's limit; the one bound a valid file can exceed, with
a filter that compresses constant data better, such as bzip2 or HDF5's scale-offset).
"""

from __future__ import annotations

import itertools
import math
import os
import zipfile
from pathlib import Path

import numpy as np

from gicnet_runtime import jsonsafe
from gicnet_runtime.errors import InputError
from gicnet_runtime.io.support import require

#: Most atoms of one molecule gicnet reads (far beyond any internal-coordinate model).
MAX_ATOMS = 10**6
#: Fewest characters of an extended XYZ atom line: one column and its line end (ASE reads
#: a species-only line ``H``); the last line of a file may lack the line end.
MIN_XYZ_ATOM_LINE_CHARS = 2
#: Largest ratio of expanded to stored bytes of compressed data: deflate's limit (1032:1,
#: zlib's technical notes), which zip (npz) and HDF5's gzip filter use.
MAX_EXPANSION = 1032
#: Bytes of the fixed header of an ASE .traj (ULM) file: magic, tag, version, item count,
#: offset of the item table.
_ULM_HEADER_BYTES = 48
_ULM_MAGICS = (b"- of Ulm", b"AFFormat")
_INT64_BYTES = 8
#: Bytes decompressed per read while measuring a compressed file.
_BLOCK_BYTES = 2**20
#: ASE's marker of a JSON value in an extended XYZ comment line.
_JSON_MARK = "_JSON "


def check_atom_count(n_atoms: int, what: str = "the file") -> None:
    """InputError unless ``0 < n_atoms <= MAX_ATOMS``."""
    if n_atoms < 1:
        raise InputError(f"{what} has {n_atoms} atoms")
    if n_atoms > MAX_ATOMS:
        raise InputError(f"{what} has {n_atoms} atoms, more than the {MAX_ATOMS} gicnet reads")


def check_ase_file(path: Path, kind: str) -> None:
    """The checks for a file ASE reads as format ``kind`` (ASE's name): extended XYZ
    (:func:`check_xyz`) and ASE .traj (:func:`check_ulm`); others pass unchecked."""
    if kind in ("extxyz", "xyz"):
        check_xyz(path)
    elif kind == "traj":
        check_ulm(path)


def check_xyz(path: Path) -> None:
    """Scan the count lines of an (extended) XYZ file the way ASE's reader finds its frames,
    reading the text as ASE does (its decompression, encoding and line ends), and refuse a
    count whose frame cannot fit in the rest of the file.  Time linear in the file, one line
    of memory; whatever else is wrong is left to ASE to report."""
    size = _content_bytes(path)
    # Characters read so far: at most the bytes read, so size - read >= the bytes left.
    read = frame = 0
    with require("ase.io.formats").open_with_compression(str(path), "r") as text:
        line = text.readline()
        while line.strip():  # ASE stops at the first blank count line
            read += len(line)
            try:
                n_atoms = int(line)
            except ValueError:
                return  # not a count line: ASE's own message is clearer
            left = size - read
            if n_atoms * MIN_XYZ_ATOM_LINE_CHARS > left:
                raise InputError(f"frame {frame} claims {n_atoms} atoms, but only {left} bytes "
                                 f"follow (an atom line takes at least "
                                 f"{MIN_XYZ_ATOM_LINE_CHARS} bytes)")
            check_atom_count(n_atoms, f"frame {frame}")
            read += sum(map(len, itertools.islice(text, n_atoms + 1)))  # comment, atoms
            line, vectors = text.readline(), 0
            while line.lstrip().startswith("VEC") and vectors < 3:  # ASE's cell vectors
                read, line, vectors = read + len(line), text.readline(), vectors + 1
            frame += 1


def _content_bytes(path: Path) -> int:
    """Bytes of the file's content: its size, or its decompressed size for the suffixes
    ASE decompresses (.gz, .bz2, .xz), measured by streaming through it and refused
    beyond :data:`MAX_EXPANSION` times the file's size (a decompression bomb)."""
    formats = require("ase.io.formats")
    size = os.path.getsize(path)
    if formats.get_compression(str(path))[1] is None:
        return size
    total, most = 0, MAX_EXPANSION * size
    with formats.open_with_compression(str(path), "rb") as stream:
        while block := stream.read(_BLOCK_BYTES):
            total += len(block)
            if total > most:
                raise InputError(f"the file expands to more than {most} bytes "
                                 f"({MAX_EXPANSION} times its size)")
    return total


def check_npz(path: Path) -> None:
    """Refuse an npz whose arrays claim (in their .npy headers) more bytes than their zip
    entries hold, whose entries claim more than their stored bytes can expand to, or whose
    entries overlap; reads the zip directory and each .npy header only."""
    size = os.path.getsize(path)
    with zipfile.ZipFile(path) as archive:
        entries = archive.infolist()
        stored = sum(entry.compress_size for entry in entries)
        if stored > size:
            raise InputError(f"npz entries claim {stored} stored bytes, more than the file's "
                             f"{size} (overlapping entries)")
        for entry in entries:
            expansion = 1 if entry.compress_type == zipfile.ZIP_STORED else MAX_EXPANSION
            if entry.file_size > entry.compress_size * expansion:
                raise InputError(f"npz entry {entry.filename!r} claims {entry.file_size} bytes "
                                 f"from {entry.compress_size} stored")
            if entry.filename.endswith(".npy"):
                with archive.open(entry) as member:
                    _check_npy_header(member, entry.file_size, entry.filename[:-4])


def _check_npy_header(member, entry_bytes: int, name: str) -> None:
    """InputError unless the array that the .npy header of ``member`` describes fits in
    the entry's ``entry_bytes``."""
    fmt = np.lib.format
    version = fmt.read_magic(member)
    read_header = fmt.read_array_header_1_0 if version == (1, 0) else \
        fmt.read_array_header_2_0
    shape, _, dtype = read_header(member)
    claimed = math.prod(shape) * dtype.itemsize
    if claimed > entry_bytes:
        raise InputError(f"npz array {name!r} claims shape {shape} of {dtype} ({claimed} "
                         f"bytes), but its entry holds {entry_bytes}")


def check_h5_dataset(dataset) -> None:
    """InputError unless h5py ``dataset``'s data lies in the file and fits in the bytes
    stored for it (with :data:`MAX_EXPANSION` for filtered, i.e. compressed, chunks): an
    unwritten dataset of any shape reads as fill values from no bytes at all."""
    if dataset.is_virtual or dataset.external:
        raise InputError(f"H5MD dataset {dataset.name} keeps its data in other files, which "
                         "gicnet does not read")
    claimed = math.prod(dataset.shape or ()) * dataset.dtype.itemsize
    stored = dataset.id.get_storage_size()
    filtered = dataset.id.get_create_plist().get_nfilters() > 0
    if claimed > stored * (MAX_EXPANSION if filtered else 1):
        raise InputError(f"H5MD dataset {dataset.name} claims shape {dataset.shape} "
                         f"({claimed} bytes), but the file stores {stored} bytes of it")


def check_ulm(path: Path) -> None:
    """Walk the item table and the JSON headers of an ASE .traj (ULM) file, the layout
    documented in :mod:`ase.io.ulm`, and refuse what the file cannot hold: items or arrays
    outside the file or overlapping, inline arrays larger than their values, and JSON too
    long or too deep (:mod:`gicnet_runtime.jsonsafe`).  Reads the headers only."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(_ULM_HEADER_BYTES)
        if len(head) < _ULM_HEADER_BYTES or head[:8] not in _ULM_MAGICS:
            return  # not ULM: ASE says so
        _, n_items, table = np.frombuffer(head[24:], "<i8").tolist()
        _check_region(table, _INT64_BYTES * n_items, size, f"the table of {n_items} items")
        fh.seek(table)
        offsets = np.frombuffer(fh.read(_INT64_BYTES * n_items), "<i8").tolist()
        claimed = _ULM_HEADER_BYTES + _INT64_BYTES * n_items
        for k, offset in enumerate(offsets):
            _check_region(offset, _INT64_BYTES, size, f"item {k}")
            fh.seek(offset)
            n_bytes = int(np.frombuffer(fh.read(_INT64_BYTES), "<i8")[0])
            _check_region(offset + _INT64_BYTES, n_bytes, size, f"the header of item {k}")
            header = jsonsafe.loads(fh.read(n_bytes), max_bytes=size,
                                    what=f"the header of item {k}")
            claimed += _INT64_BYTES + n_bytes + _ulm_array_bytes(header, size, f"item {k}")
    if claimed > size:
        raise InputError(f"the items claim {claimed} bytes in all, more than the file's {size} "
                         "(overlapping items)")


def _check_region(start: int, n_bytes: int, size: int, what: str) -> None:
    if start < 0 or n_bytes < 0 or start + n_bytes > size:
        raise InputError(f"{what} lies at bytes {start} to {start + n_bytes}, outside the "
                         f"file ({size} bytes)")


def _ulm_array_bytes(value, size: int, where: str) -> int:
    """Bytes of the arrays stored for ULM header ``value`` (a decoded JSON value), after
    checking each one lies in the file and each inline array has its values."""
    total = 0
    if isinstance(value, dict):
        for key, item in value.items():
            if key.endswith(".") and isinstance(item, dict) and "ndarray" in item:
                total += _ulm_stored_array(item["ndarray"], size, f"{where} array {key[:-1]}")
            elif key == "constraints" and isinstance(item, str):  # JSON ASE decodes later
                jsonsafe.check(item, max_bytes=size, what=f"{where} constraints")
            else:
                total += _ulm_array_bytes(item, size, where)
        if "__ndarray__" in value:
            _check_inline_array(value["__ndarray__"], where)
    elif isinstance(value, list):
        total += sum(_ulm_array_bytes(item, size, where) for item in value)
    return total


def _ulm_stored_array(spec, size: int, what: str) -> int:
    """Bytes of a ULM ndarray record ``[shape, dtype, offset]``, checked to lie in the file."""
    try:
        shape, dtype, offset = spec
        dtype = np.dtype(dtype)
        dims = [int(d) for d in shape]
        if dtype.kind not in "biufc" or min(dims, default=0) < 0 or int(offset) != offset:
            raise ValueError
    except (TypeError, ValueError):
        raise InputError(f"{what} has a malformed shape, dtype or offset") from None
    n_bytes = math.prod(dims) * dtype.itemsize
    _check_region(int(offset), n_bytes, size, f"{what} of shape {tuple(dims)}")
    return n_bytes


def _check_inline_array(spec, what: str) -> None:
    """InputError unless an inline array ``[shape, dtype, values]`` (ASE's JSON arrays)
    claims no more elements than it lists values (ASE allocates the claimed shape first)."""
    try:
        shape, dtype, values = spec
        elements = math.prod(int(d) for d in shape) * (2 if np.dtype(dtype).kind == "c" else 1)
    except (TypeError, ValueError):
        raise InputError(f"{what} holds a malformed inline array") from None
    listed = len(values) if isinstance(values, list) else 1
    if elements > max(1, listed):
        raise InputError(f"{what} holds an inline array of shape {tuple(shape)} but lists "
                         f"{listed} value(s)")


def parse_xyz_comment(line: str, sep: str | None = None) -> dict:
    """ASE's parser of extended XYZ comment lines (``ase.io.extxyz.key_val_str_to_dict``,
    given to its reader as ``properties_parser``), except that the JSON values it would
    decode itself (``key="_JSON ..."``) are decoded by :func:`gicnet_runtime.jsonsafe.loads`:
    ASE splits the line with their marker held back, then each is bounded and decoded here
    exactly as ASE would."""
    extxyz = require("ase.io.extxyz")
    if _JSON_MARK not in line:
        return extxyz.key_val_str_to_dict(line, sep)
    held = _JSON_MARK[:-1] + "\0"
    while held in line:  # a stand-in the line does not hold
        held += "\0"
    parsed = extxyz.key_val_str_to_dict(line.replace(_JSON_MARK, held), sep)
    out = {}
    for key, value in parsed.items():
        key = key.replace(held, _JSON_MARK)
        if isinstance(value, str):
            value = value.replace(held, _JSON_MARK)
            if value.startswith(_JSON_MARK) and key.lower() not in extxyz.UNPROCESSED_KEYS:
                value = _ase_json_value(value[len(_JSON_MARK):], key)
        out[key] = value
    return out


def _ase_json_value(text: str, key: str):
    """ASE's reading of an extended XYZ JSON value: an array if numeric, else as decoded."""
    decoded = jsonsafe.loads(text, what=f"the JSON value of {key}")
    array = np.array(decoded)
    return array if array.dtype.kind in "ifb" else decoded
