"""The non-IDX domains (issue 8): CIFAR-10, PneumoniaMNIST and FSDD readers, checksums, the
FSDD split rule, spectrogram images and their inversion to sound."""
from __future__ import annotations

import io
import lzma
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from huscf_mpi.data import (DOMAINS, ENV_VAR, OFFICIAL, DataError, decoded_meta, ensure_decoded, get_domain,
                            load_domain, load_shard, open_domain, to_unit_range)
from huscf_mpi.data import audio
from huscf_mpi.data.readers import fsdd_split

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get(ENV_VAR) or REPO / "data")


def needs(folder: str):
    return pytest.mark.skipif(not (DATA / folder).is_dir(), reason=f"no {folder}/ in the data root {DATA}")


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


# --- synthetic copies of each format ------------------------------------------------------------

def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def fake_cifar(root: Path, n_train: int = 20, n_test: int = 10) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    folder = root / "cifar10"
    folder.mkdir(parents=True)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)  # NHWC as shipped
        labels = (np.arange(n) % 10).astype(np.uint8)
        (folder / f"{split}_images.npy.xz").write_bytes(lzma.compress(_npy_bytes(images)))
        (folder / f"{split}_labels.npy").write_bytes(_npy_bytes(labels))
        arrays[split] = images
    return arrays


def fake_medmnist(root: Path) -> None:
    rng = np.random.default_rng(1)
    folder = root / "medmnist"
    folder.mkdir(parents=True)
    sizes = {"train": 30, "val": 7, "test": 12}
    np.savez(folder / "pneumoniamnist.npz",
             **{f"{s}_images": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) for s, n in sizes.items()},
             **{f"{s}_labels": (np.arange(n) % 2).astype(np.uint8)[:, None] for s, n in sizes.items()})


def _tone(freq: float, seconds: float, rate: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def fake_fsdd(root: Path, digits=(0, 1, 2), speakers=("anna", "bob"), n_index: int = 7) -> None:
    """A zip laid out like FSDD's (``recordings/{digit}_{speaker}_{index}.wav``): tones per digit."""
    folder = root / "fsdd"
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / "recordings.zip", "w") as z:
        for d in digits:
            for s in speakers:
                for i in range(n_index):
                    z.writestr(f"recordings/{d}_{s}_{i}.wav",
                               audio.wav_bytes(_tone(300 + 400 * d + 10 * i, 0.3 + 0.05 * i), 8000))


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


# --- registry -------------------------------------------------------------------------------

def test_registry_new_domains():
    c, p, f = DOMAINS["cifar10"], DOMAINS["pneumoniamnist"], DOMAINS["fsdd"]
    assert (c.image_shape, c.n_classes, c.reader) == ((3, 32, 32), 10, "npy_xz")
    assert (p.image_shape, p.n_classes, p.folder, p.class_names) == ((1, 28, 28), 2, "medmnist", ("normal", "pneumonia"))
    assert (f.image_shape, f.n_classes, f.files) == ((1, 28, 28), 10, ("recordings.zip",))
    assert f.sha256["recordings.zip"] == "72be567be32b90d4e72a82fcbdf4215aa4957770bd3e8a3849bf731bbef1cf25"
    assert set(c.files) == {"train_images.npy.xz", "train_labels.npy", "test_images.npy.xz", "test_labels.npy"}


@pytest.mark.parametrize("name", ["svhn", "bloodmnist", "dermamnist"])
def test_unavailable_domains_say_why(name):
    with pytest.raises(DataError) as exc:
        get_domain(name)
    msg = one_line(exc)
    assert "not available" in msg and name in msg and "could not be obtained" in msg


# --- readers on synthetic files ---------------------------------------------------------------

def test_cifar_reader_nchw(tmp_path):
    src = fake_cifar(tmp_path)
    d = load_domain("cifar10", tmp_path, seed=0, verify=False)
    assert d.split == OFFICIAL
    assert d.train_images.shape == (20, 3, 32, 32) and d.train_images.dtype == np.uint8
    assert d.test_images.shape == (10, 3, 32, 32) and d.train_labels.dtype == np.int64
    np.testing.assert_array_equal(d.train_images, src["train"].transpose(0, 3, 1, 2))
    assert to_unit_range(d.train_images[:2]).shape == (2, 3, 32, 32)


def test_medmnist_reader_official_splits_without_val(tmp_path):
    fake_medmnist(tmp_path)
    d = load_domain("pneumoniamnist", tmp_path, seed=0, verify=False)
    assert d.train_images.shape == (30, 28, 28) and d.test_images.shape == (12, 28, 28)
    assert d.train_labels.shape == (30,) and set(d.train_labels.tolist()) == {0, 1}


def test_medmnist_reader_slot_takes_rgb_sets(tmp_path):
    """BloodMNIST/DermaMNIST are RGB (N, 28, 28, 3) .npz files: the reader already takes them;
    only their registry entry and checksum are missing (they could not be obtained here)."""
    from huscf_mpi.data.readers import decode
    from huscf_mpi.data.registry import DomainSpec

    rng = np.random.default_rng(2)
    path = tmp_path / "rgbmnist.npz"
    np.savez(path, **{f"{s}_images": rng.integers(0, 256, (n, 28, 28, 3), dtype=np.uint8)
                      for s, n in (("train", 16), ("val", 4), ("test", 8))},
             **{f"{s}_labels": (np.arange(n) % 8).astype(np.uint8)[:, None] for s, n in (("train", 16), ("val", 4), ("test", 8))})
    spec = DomainSpec("rgbmnist", "medmnist", None, None, None, None, n_classes=8, class_names=tuple("abcdefgh"),
                      image_shape=(3, 28, 28), reader="medmnist_npz", sources=("rgbmnist.npz",))
    out = decode(spec, {"rgbmnist.npz": path}).splits
    assert set(out) == {"train", "test"} and out["train"][0].shape == (16, 3, 28, 28)
    with np.load(path) as z:
        np.testing.assert_array_equal(out["test"][0], z["test_images"].transpose(0, 3, 1, 2))


def test_fsdd_split_rule():
    assert [fsdd_split(i) for i in range(7)] == ["test"] * 5 + ["train"] * 2
    assert fsdd_split(49) == "train"


def test_fsdd_reader_split_labels_and_train_statistics(tmp_path):
    fake_fsdd(tmp_path)
    root, cache = tmp_path, tmp_path / "cache"
    d = load_domain("fsdd", root, seed=0, verify=False)
    # 3 digits x 2 speakers: indices 0-4 test, 5-6 train
    assert d.test_images.shape == (30, 28, 28) and d.train_images.shape == (12, 28, 28)
    assert np.bincount(d.test_labels).tolist() == [10, 10, 10] and np.bincount(d.train_labels).tolist() == [4, 4, 4]
    assert d.train_images.dtype == np.uint8 and d.train_images.max() == 255  # train max maps to 255
    ensure_decoded("fsdd", root, cache, verify=False)
    meta = decoded_meta("fsdd", cache)
    assert meta["db_hi"] - meta["db_lo"] == pytest.approx(audio.DEFAULT.top_db)
    assert meta["mel"]["n_mels"] == 28 and len(meta["speakers"]["train"]) == 12
    got = open_domain("fsdd", cache, seed=0)
    np.testing.assert_array_equal(got.train_images, d.train_images)
    np.testing.assert_array_equal(got.test_labels, d.test_labels)
    images, labels = load_shard("fsdd", cache, 0, np.array([1, 3]))
    assert images.shape == (2, 28, 28) and labels.tolist() == d.train_labels[[1, 3]].tolist()


@pytest.mark.parametrize("name,make,victim", [
    ("cifar10", fake_cifar, "cifar10/train_images.npy.xz"),
    ("cifar10", fake_cifar, "cifar10/test_labels.npy"),
    ("pneumoniamnist", fake_medmnist, "medmnist/pneumoniamnist.npz"),
    ("fsdd", fake_fsdd, "fsdd/recordings.zip"),
])
def test_truncated_file_is_one_clear_line(tmp_path, name, make, victim):
    make(tmp_path)
    truncate(tmp_path / victim)
    with pytest.raises(DataError) as exc:  # without checksums: the decoder notices
        load_domain(name, tmp_path, seed=0, verify=False)
    msg = one_line(exc)
    assert str(tmp_path / victim) in msg and "truncated or corrupt" in msg and "replace it" in msg
    with pytest.raises(DataError) as exc:  # with checksums (the default): the sha256 does
        ensure_decoded(name, tmp_path, tmp_path / "cache")
    assert "sha256 mismatch" in one_line(exc)


def test_wrong_shape_is_refused(tmp_path):
    folder = tmp_path / "medmnist"
    folder.mkdir()
    np.savez(folder / "pneumoniamnist.npz", train_images=np.zeros((3, 32, 32), np.uint8),
             train_labels=np.zeros((3, 1), np.uint8), test_images=np.zeros((3, 32, 32), np.uint8),
             test_labels=np.zeros((3, 1), np.uint8))
    with pytest.raises(DataError) as exc:
        load_domain("pneumoniamnist", tmp_path, seed=0, verify=False)
    assert "(N, 28, 28)" in one_line(exc)


# --- spectrograms ---------------------------------------------------------------------------

def test_spectrogram_shapes_and_range():
    spec = audio.DEFAULT
    assert spec.shape == (28, 28) and spec.frames == 28 and spec.duration == pytest.approx(0.864)
    for seconds in (0.1, 0.864, 2.0):  # padded, exact, trimmed
        db = audio.log_mel(_tone(440, seconds), spec)
        assert db.shape == (28, 28) and db.dtype == np.float32
    assert audio.fixed_length(np.ones(5), 8).tolist() == [1, 1, 1, 1, 1, 0, 0, 0]
    assert len(audio.fixed_length(np.ones(9000), spec.n_samples)) == spec.n_samples


def test_spectrogram_image_round_trip():
    db = audio.log_mel(_tone(500, 0.5))
    lo, hi = audio.db_range(db)
    image = audio.to_image(db, lo, hi)
    assert image.shape == (28, 28) and image.dtype == np.uint8
    # the 500 Hz band is bright; row 0 is the highest band, so it sits in the lower half
    assert np.argmax(image[:, 5]) > 14
    back = audio.image_to_db(to_unit_range(image[None])[0], lo, hi)
    inside = db >= lo
    assert np.abs(back - db)[inside].max() <= (hi - lo) / 255 / 2 + 1e-3  # quantisation only


def test_griffin_lim_inversion():
    y = _tone(700, 0.6)
    db = audio.log_mel(y)
    lo, hi = audio.db_range(db)
    image = to_unit_range(audio.to_image(db, lo, hi)[None])[0]
    wave = audio.image_to_audio(image, lo, hi, n_iter=32)
    assert wave.shape == (audio.DEFAULT.n_samples,) and wave.dtype == np.float32
    assert 0 < np.abs(wave).max() <= 0.99
    again = audio.image_to_audio(image, lo, hi, n_iter=32)
    np.testing.assert_array_equal(wave, again)  # seeded phase
    # the resynthesised clip has the original's spectral shape (dominant band and envelope)
    db2 = audio.log_mel(wave)
    assert np.argmax(db2[:, 5]) == np.argmax(db[:, 5])
    img2 = audio.to_image(db2, *audio.db_range(db2)).astype(float)  # each at its own level (peak-normalised)
    assert np.corrcoef(audio.to_image(db, lo, hi).astype(float).ravel(), img2.ravel())[0, 1] > 0.8
    pcm = audio.to_int16(wave)
    assert pcm.dtype == np.int16
    w, rate = audio.read_wav(audio.wav_bytes(pcm, 8000))
    assert rate == 8000 and len(w) == len(wave)


# --- the real files ---------------------------------------------------------------------------

@pytest.mark.data
@needs("medmnist")
def test_real_pneumoniamnist():
    d = load_domain("pneumoniamnist", DATA, seed=0)
    assert d.train_images.shape == (4708, 28, 28) and d.test_images.shape == (624, 28, 28)
    assert np.bincount(d.train_labels).tolist() == [1214, 3494]  # val (524) is not in train
    assert np.bincount(d.test_labels).tolist() == [234, 390]


@pytest.mark.data
@needs("fsdd")
def test_real_fsdd(tmp_path):
    ensure_decoded("fsdd", DATA, tmp_path)
    d = open_domain("fsdd", tmp_path, seed=0)
    assert d.train_images.shape == (2700, 28, 28) and d.test_images.shape == (300, 28, 28)
    assert np.bincount(d.train_labels).tolist() == [270] * 10 and np.bincount(d.test_labels).tolist() == [30] * 10
    meta = decoded_meta("fsdd", tmp_path)
    assert set(meta["speakers"]["test"]) == {"george", "jackson", "lucas", "nicolas", "theo", "yweweler"}
    assert d.train_images.max() == 255 and d.test_images.min() == 0


@pytest.mark.data
@needs("cifar10")
def test_real_cifar10(tmp_path):
    ensure_decoded("cifar10", DATA, tmp_path)
    d = open_domain("cifar10", tmp_path, seed=0)
    assert d.train_images.shape == (50000, 3, 32, 32) and d.test_images.shape == (10000, 3, 32, 32)
    assert np.bincount(d.train_labels).tolist() == [5000] * 10 and np.bincount(d.test_labels).tolist() == [1000] * 10
    means = d.test_images.reshape(10000, 3, -1).mean(axis=(0, 2)) / 255  # README's per-channel means
    np.testing.assert_allclose(means, [0.4942, 0.4851, 0.4504], atol=5e-4)


@pytest.mark.data
@needs("medmnist")
def test_real_truncated_copy(tmp_path):
    folder = tmp_path / "medmnist"
    folder.mkdir()
    (folder / "pneumoniamnist.npz").write_bytes((DATA / "medmnist" / "pneumoniamnist.npz").read_bytes()[:100_000])
    with pytest.raises(DataError) as exc:
        load_domain("pneumoniamnist", tmp_path, seed=0)
    msg = one_line(exc)
    assert "sha256 mismatch" in msg and "pneumoniamnist.npz" in msg and DOMAINS["pneumoniamnist"].sha256["pneumoniamnist.npz"] in msg
    with pytest.raises(DataError) as exc:
        load_domain("pneumoniamnist", tmp_path, seed=0, verify=False)
    assert "truncated or corrupt" in one_line(exc)
