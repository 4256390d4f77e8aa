"""Data root, IDX reader, registry, domain loading and client batches (SPEC §4)."""
from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from huscf_mpi.data import (DOMAINS, ENV_VAR, POOL_SPLIT, ClientBatches, DataError, epoch_iterations, get_domain,
                            load_domain, read_idx, resolve_data_root, to_unit_range)
from huscf_mpi.data import ensure_decoded, load_shard, loading, open_domain
from huscf_mpi.data.cache import open_decoded

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get(ENV_VAR) or REPO / "data")
needs_data = pytest.mark.skipif(not (DATA / "mnist").is_dir(), reason=f"no datasets in {DATA} (set {ENV_VAR})")


def write_idx(path: Path, arr: np.ndarray, gz: bool = True) -> Path:
    """Write ``arr`` (uint8) as IDX, the inverse of read_idx for the tests."""
    raw = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def fake_pool_domain(root: Path, name: str = "notmnist", n: int = 100) -> None:
    rng = np.random.default_rng(0)
    folder = root / name
    folder.mkdir(parents=True)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


# --- data root -------------------------------------------------------------------------------

def test_root_option_wins_over_env(tmp_path, monkeypatch):
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv(ENV_VAR, str(other))
    assert resolve_data_root(tmp_path) == tmp_path.resolve()
    assert resolve_data_root(None) == other.resolve()


def test_root_default_is_cwd_data(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as exc:
        resolve_data_root(None)
    assert "default ./data" in one_line(exc)
    (tmp_path / "data").mkdir()
    assert resolve_data_root(None) == (tmp_path / "data").resolve()


def test_root_error_names_source(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nope"))
    with pytest.raises(DataError) as exc:
        resolve_data_root(None)
    assert ENV_VAR in one_line(exc) and "nope" in str(exc.value)
    with pytest.raises(DataError) as exc:
        resolve_data_root(tmp_path / "missing")
    assert "--data-root" in one_line(exc)


# --- IDX reader ------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [True, False])
def test_idx_roundtrip(tmp_path, gz):
    arr = np.random.default_rng(1).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    got = read_idx(write_idx(tmp_path / "x.idx", arr, gz=gz))
    assert got.dtype == np.uint8 and got.shape == (7, 28, 28) and got.flags.writeable
    np.testing.assert_array_equal(got, arr)


@pytest.mark.parametrize("raw", [
    b"",                                                     # empty
    b"\x01\x00\x08\x01" + struct.pack(">I", 2) + b"ab",      # bad magic
    b"\x00\x00\x07\x01" + struct.pack(">I", 2) + b"ab",      # bad type code
    b"\x00\x00\x08\x03" + struct.pack(">I", 2),              # truncated header
    b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"ab",      # truncated payload
    b"\x00\x00\x08\x01" + struct.pack(">I", 1) + b"ab",      # trailing bytes
])
def test_idx_malformed(tmp_path, raw):
    path = tmp_path / "bad.idx"
    path.write_bytes(raw)
    with pytest.raises(DataError) as exc:
        read_idx(path)
    assert "bad.idx" in one_line(exc)


def test_idx_corrupt_gzip(tmp_path):
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x02ab")[:-6])
    with pytest.raises(DataError) as exc:
        read_idx(path)
    assert "bad.gz" in one_line(exc)


# --- registry ---------------------------------------------------------------------------------

def test_registry():
    assert set(DOMAINS) == {"mnist", "fashion_mnist", "kmnist", "notmnist", "cifar10", "pneumoniamnist", "fsdd"}
    for spec in DOMAINS.values():
        assert spec.n_classes == len(spec.class_names)
        assert set(spec.sha256) == set(spec.files)
        assert all(len(h) == 64 for h in spec.sha256.values())
    assert DOMAINS["kmnist"].pool and DOMAINS["notmnist"].pool and not DOMAINS["mnist"].pool
    for name in ("mnist", "fashion_mnist", "kmnist", "notmnist"):
        assert DOMAINS[name].n_classes == 10 and DOMAINS[name].image_shape == (1, 28, 28)
    assert DOMAINS["kmnist"].train_images is None
    with pytest.raises(DataError) as exc:
        get_domain("cifar100")
    assert "mnist" in one_line(exc) and "cifar100" in str(exc.value)


# --- loading ----------------------------------------------------------------------------------

def test_pool_split_synthetic(tmp_path):
    fake_pool_domain(tmp_path, n=100)
    a = load_domain("notmnist", tmp_path, seed=3, verify=False)
    b = load_domain("notmnist", tmp_path, seed=3, verify=False)
    c = load_domain("notmnist", tmp_path, seed=4, verify=False)
    assert a.split == POOL_SPLIT and len(a.train_images) == 80 and len(a.test_images) == 20
    np.testing.assert_array_equal(a.train_images, b.train_images)
    assert not np.array_equal(a.train_labels, c.train_labels)
    # train and test are disjoint and together the whole pool (labels i % 10 with distinct images)
    pool = read_idx(tmp_path / "notmnist" / "t10k-images-idx3-ubyte.gz").reshape(100, -1)
    rows = {r.tobytes() for r in pool}
    got = [r.tobytes() for r in np.concatenate([a.train_images, a.test_images]).reshape(100, -1)]
    assert set(got) == rows and len(set(got)) == 100


def test_verify_flags_synthetic_files(tmp_path):
    fake_pool_domain(tmp_path)
    with pytest.raises(DataError) as exc:
        load_domain("notmnist", tmp_path, seed=0)
    assert "sha256 mismatch" in one_line(exc) and "t10k-images-idx3-ubyte.gz" in str(exc.value)


def test_missing_file_names_it(tmp_path):
    fake_pool_domain(tmp_path)
    (tmp_path / "notmnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as exc:
        load_domain("notmnist", tmp_path, seed=0, verify=False)
    msg = one_line(exc)
    assert str(tmp_path / "notmnist" / "t10k-labels-idx1-ubyte.gz") in msg and "--data-root" in msg


def test_labels_out_of_range(tmp_path):
    fake_pool_domain(tmp_path)
    write_idx(tmp_path / "notmnist" / "t10k-labels-idx1-ubyte.gz", np.full(100, 12, np.uint8))
    with pytest.raises(DataError, match="labels must lie in 0..9"):
        load_domain("notmnist", tmp_path, seed=0, verify=False)


def test_to_unit_range():
    x = np.array([[[0, 255], [128, 51]]], dtype=np.uint8)
    y = to_unit_range(x)
    assert y.dtype == np.float32 and y.shape == (1, 1, 2, 2)
    assert y.min() == -1.0 and y.max() == 1.0
    np.testing.assert_allclose(y[0, 0, 1], [128 / 255 * 2 - 1, 51 / 255 * 2 - 1], rtol=0, atol=1e-6)
    with pytest.raises(TypeError):
        to_unit_range(x.astype(np.float32))


@pytest.mark.parametrize("name,n_train,n_test,split", [
    ("mnist", 60000, 10000, "official"),
    ("fashion_mnist", 60000, 10000, "official"),
    ("kmnist", 8000, 2000, POOL_SPLIT),
    ("notmnist", 8000, 2000, POOL_SPLIT),
])
@pytest.mark.data
@needs_data
def test_real_domains(name, n_train, n_test, split):
    d = load_domain(name, DATA, seed=0)
    assert d.split == split
    assert d.train_images.shape == (n_train, 28, 28) and d.train_images.dtype == np.uint8
    assert d.test_images.shape == (n_test, 28, 28)
    assert d.train_labels.dtype == np.int64 and d.train_labels.shape == (n_train,)
    assert set(np.unique(d.train_labels)) == set(range(10))
    if split == POOL_SPLIT:  # same seed, same split, on every call
        again = load_domain(name, DATA, seed=0)
        np.testing.assert_array_equal(d.test_labels, again.test_labels)
        assert np.bincount(np.concatenate([d.train_labels, d.test_labels])).tolist() == [1000] * 10
    if name == "mnist":  # published per-class counts (data README)
        assert np.bincount(d.train_labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
        assert np.bincount(d.test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _mirror_mnist(tmp_path: Path) -> Path:
    """A tmp data root whose mnist/ links to the real files (cheap), for corruption tests."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    for f in DOMAINS["mnist"].files:
        (folder / f).symlink_to(DATA / "mnist" / f)
    return tmp_path


@pytest.mark.data
@needs_data
def test_real_checksum_mismatch(tmp_path):
    root = _mirror_mnist(tmp_path)
    target = root / "mnist" / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(target.read_bytes())
    target.unlink()
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(DataError) as exc:
        load_domain("mnist", root, seed=0)
    msg = one_line(exc)
    assert str(target) in msg and DOMAINS["mnist"].sha256[target.name] in msg and "got" in msg


@pytest.mark.data
@needs_data
def test_real_missing_file(tmp_path):
    root = _mirror_mnist(tmp_path)
    (root / "mnist" / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError) as exc:
        load_domain("mnist", root, seed=0)
    assert "missing dataset file" in one_line(exc) and "train-images-idx3-ubyte.gz" in str(exc.value)


@pytest.mark.data
@needs_data
def test_checksum_cached_per_process(monkeypatch):
    path = DATA / "mnist" / "t10k-labels-idx1-ubyte.gz"
    first = loading.sha256_file(path)
    monkeypatch.setattr(loading.hashlib, "sha256", lambda: pytest.fail("hashed twice"))
    assert loading.sha256_file(path) == first == DOMAINS["mnist"].sha256[path.name]


# --- decoded-data cache -----------------------------------------------------------------------

def test_decoded_cache_gives_the_loaders_arrays_memory_mapped(tmp_path):
    root, cache = tmp_path / "root", tmp_path / "cache"
    fake_pool_domain(root, n=100)
    folder = ensure_decoded("notmnist", root, cache, verify=False)
    raw = open_decoded("notmnist", cache)
    assert isinstance(raw["pool-images"], np.memmap) and not raw["pool-images"].flags.writeable
    ref, got = load_domain("notmnist", root, seed=3, verify=False), open_domain("notmnist", cache, seed=3)
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        np.testing.assert_array_equal(getattr(got, field), getattr(ref, field))
    assert got.split == ref.split == POOL_SPLIT
    idx = np.array([0, 5, 17, 79])
    images, labels = load_shard("notmnist", cache, 3, idx)
    np.testing.assert_array_equal(images, ref.train_images[idx])
    np.testing.assert_array_equal(labels, ref.train_labels[idx])
    assert images.flags.writeable and labels.dtype == np.int64  # a private copy of the rows only
    assert folder.parent == cache and (folder / "manifest.json").is_file()


def test_decoded_cache_is_reused_and_rebuilt_when_a_source_changes(tmp_path):
    root, cache = tmp_path / "root", tmp_path / "cache"
    fake_pool_domain(root, n=50)
    folder = ensure_decoded("notmnist", root, cache, verify=False)
    built = (folder / "pool-images.npy").stat().st_mtime_ns
    ensure_decoded("notmnist", root, cache, verify=False)
    assert (folder / "pool-images.npy").stat().st_mtime_ns == built  # valid: not rewritten
    src = root / "notmnist" / "t10k-labels-idx1-ubyte.gz"
    write_idx(src, (np.arange(50) % 5).astype(np.uint8))
    os.utime(src, ns=(built + 10**9, built + 10**9))
    ensure_decoded("notmnist", root, cache, verify=False)
    assert open_decoded("notmnist", cache)["pool-labels"].max() == 4  # rebuilt from the new file


def test_decoded_cache_refuses_a_missing_or_truncated_folder(tmp_path):
    root, cache = tmp_path / "root", tmp_path / "cache"
    fake_pool_domain(root, n=20)
    with pytest.raises(DataError) as exc:
        open_decoded("notmnist", cache)
    assert "data.cache" in one_line(exc)
    folder = ensure_decoded("notmnist", root, cache, verify=False)
    with open(folder / "pool-images.npy", "r+b") as f:
        f.truncate(100)
    with pytest.raises(DataError):
        open_decoded("notmnist", cache)


@pytest.mark.data
@needs_data
def test_decoded_mnist_equals_the_idx_files(tmp_path):
    ensure_decoded("mnist", DATA, tmp_path)
    ref, got = load_domain("mnist", DATA, seed=0), open_domain("mnist", tmp_path, seed=0)
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        np.testing.assert_array_equal(getattr(got, field), getattr(ref, field))


# --- batches ----------------------------------------------------------------------------------

def _shard(n: int):
    images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None], (n, 28, 28)).copy()
    return images, np.arange(n, dtype=np.int64)


@pytest.mark.parametrize("n,b", [(10, 4), (3, 8), (64, 64), (100, 7)])
def test_client_batches_full_and_covering(n, b):
    images, labels = _shard(n)
    batches = ClientBatches(images, labels, b, np.random.default_rng(0))
    seen = []
    for _ in range(3 * n):
        x, y = batches.next()
        assert x.shape == (b, 1, 28, 28) and y.shape == (b,) and y.dtype == torch.int64
        assert x.dtype == torch.float32
        assert torch.equal(((x[:, 0, 0, 0] + 1) / 2 * 255).round().long(), y)  # image and label travel together
        seen.extend(y.tolist())
    # each consecutive run of n draws is one full pass: a permutation of the shard
    for p in range(len(seen) // n):
        assert sorted(seen[p * n:(p + 1) * n]) == list(range(n))
    assert batches.passes == -(-len(seen) // n)


def test_client_batches_seeded_and_reshuffled():
    images, labels = _shard(50)
    a = ClientBatches(images, labels, 50, np.random.default_rng(5))
    b = ClientBatches(images, labels, 50, np.random.default_rng(5))
    first, second = a.next()[1], a.next()[1]
    assert torch.equal(first, b.next()[1])
    assert not torch.equal(first, second)  # a fresh permutation per pass


def test_client_batches_scale_per_batch_like_the_whole_shard():
    images = np.random.default_rng(1).integers(0, 256, (37, 28, 28), dtype=np.uint8)
    labels = np.arange(37, dtype=np.int64)
    batches = ClientBatches(images, labels, 16, np.random.default_rng(2))
    whole = to_unit_range(images)
    for _ in range(5):
        x, y = batches.next()
        assert torch.equal(x, torch.from_numpy(whole[y.numpy()]))  # bit-identical


def test_client_batches_validation():
    images, labels = _shard(4)
    with pytest.raises(ValueError):
        ClientBatches(images[:0], labels[:0], 2, np.random.default_rng())
    with pytest.raises(ValueError):
        ClientBatches(images, labels[:3], 2, np.random.default_rng())
    with pytest.raises(ValueError):
        ClientBatches(images, labels, 0, np.random.default_rng())


def test_epoch_iterations():
    assert epoch_iterations([600, 64, 1], 64) == 10
    assert epoch_iterations([640], 64) == 10
    with pytest.raises(ValueError):
        epoch_iterations([], 64)
    with pytest.raises(ValueError):
        epoch_iterations([10, 0], 64)
