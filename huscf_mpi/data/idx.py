"""Reader for IDX files, the MNIST-family format, gzipped or plain (SPEC §4)."""
from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from .errors import DataError

# IDX type codes; all multi-byte values are big-endian.
_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    # Sniff the content rather than trust the extension: an unpacked copy may keep ".gz".
    if raw[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"corrupt gzip stream in {path} ({exc}): replace the file with a good copy") from None
    return raw


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file into an array.

    Parameters
    ----------
    path : str or Path
        An IDX file, gzip-compressed (detected from its first bytes) or plain.

    Returns
    -------
    ndarray
        Writable array in native byte order with the file's dimensions, e.g. ``uint8``
        (N, 28, 28) for images and ``uint8`` (N,) for labels.

    Raises
    ------
    DataError
        If the file cannot be read, the gzip stream is corrupt, the magic number or type code
        is invalid, or the payload length disagrees with the header's dimensions (a missing
        file is reported as DataError too).
    """
    path = Path(path)
    try:
        raw = _read_bytes(path)
    except OSError as exc:
        raise DataError(f"cannot read IDX file {path} ({exc.strerror or exc}): check the path and permissions") from None
    if len(raw) < 4:
        raise DataError(f"malformed IDX file {path}: {len(raw)} bytes, shorter than the 4-byte header")
    zero, code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or code not in _DTYPES or ndim == 0:
        raise DataError(
            f"malformed IDX file {path}: bad magic 0x{raw[:4].hex()} (want 0x0000, a type code in "
            f"{sorted(hex(c) for c in _DTYPES)}, ndim >= 1): replace the file with a good copy"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"malformed IDX file {path}: truncated header ({len(raw)} bytes, need {header})")
    dims = struct.unpack(">" + "I" * ndim, raw[4:header])
    dtype = _DTYPES[code]
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(
            f"malformed IDX file {path}: {len(raw)} bytes but header dims {dims} need {expected}: "
            "the file is truncated or not IDX; replace it with a good copy"
        )
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    # astype copies, giving a writable native-endian array (torch.from_numpy warns on read-only).
    return arr.astype(dtype.newbyteorder("="), copy=True)
