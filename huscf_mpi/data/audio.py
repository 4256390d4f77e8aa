"""Audio as images: spoken-digit clips as fixed-size log-mel spectrograms, and back (issue 8).

The GAN, the partition, the batches and the classifiers all work on uint8 images scaled to
[-1, 1], so a clip becomes one: a 28x28 log-mel spectrogram (28 mel bands x 28 frames),
mapped linearly from a decibel range fixed by the *training split* to 0..255 and stored in the
decoded-data cache like any other domain. The rest of the pipeline is unchanged.

Why 28x28: it is the MNIST family's shape, so FSDD trains on the paper's ``cgan28``
unchanged (1 channel, the cheapest model on CPU) and can share a server body with the
MNIST-family domains in a multi-domain run (spoken and written digits even share labels
0-9). 32x32 would need ``cgan32``, cost about 30 % more per step for four extra bands and
frames, and audibly improve nothing after Griffin-Lim at 8 kHz.

Parameters (:class:`MelSpec`): 8 kHz, clips right-padded with silence or cut to 6,912
samples (0.864 s; 98.5 % of FSDD clips are shorter, median 0.42 s), ``n_fft`` 512 (64 ms),
hop 256 (32 ms) with centred frames -> 1 + 6912 // 256 = 28 frames, 28 mel bands over
0-4 kHz. Power in dB (``librosa.power_to_db``, ref 1.0); the range is [hi - 80 dB, hi]
with hi the training split's maximum, so test clips are mapped with training statistics
only. Rows are flipped so the highest band is row 0 (a spectrogram picture: low pitch at
the bottom).

The DSP is librosa's (mel filter bank, STFT, Griffin-Lim); WAV bytes are read with the
standard library's ``wave``.
"""
from __future__ import annotations

import io
import wave
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class MelSpec:
    """How a clip becomes a spectrogram image (see the module docstring for the choices)."""

    sample_rate: int = 8000
    n_samples: int = 6912
    n_fft: int = 512
    hop_length: int = 256
    n_mels: int = 28
    top_db: float = 80.0

    @property
    def frames(self) -> int:
        """Frames per clip (centred STFT): ``1 + n_samples // hop_length``."""
        return 1 + self.n_samples // self.hop_length

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the image: (n_mels, frames)."""
        return (self.n_mels, self.frames)

    @property
    def duration(self) -> float:
        """Seconds per clip after pad/trim."""
        return self.n_samples / self.sample_rate

    def as_dict(self) -> dict:
        return asdict(self)


DEFAULT = MelSpec()


def _filter_kwargs(spec: MelSpec) -> dict:
    # The same mel filter bank both ways (fmin 0, fmax sr/2 are librosa's defaults, named here).
    return dict(sr=spec.sample_rate, n_fft=spec.n_fft, fmin=0.0, fmax=spec.sample_rate / 2, power=2.0)


def read_wav(data: bytes, name: str = "<wav>") -> tuple[np.ndarray, int]:
    """Decode 16-bit PCM mono WAV bytes: float32 samples in [-1, 1) and the sample rate.

    Raises ``ValueError`` (naming ``name``) for anything else: the caller turns it into a
    :class:`~huscf_mpi.data.DataError` naming the archive.
    """
    try:
        with wave.open(io.BytesIO(data)) as w:
            if w.getsampwidth() != 2 or w.getnchannels() != 1:
                raise ValueError(f"{name}: expected 16-bit mono PCM, got {8 * w.getsampwidth()}-bit, "
                                 f"{w.getnchannels()} channels")
            rate, frames = w.getframerate(), w.readframes(w.getnframes())
    except (wave.Error, EOFError) as e:
        raise ValueError(f"{name}: not a readable WAV ({e})") from None
    if len(frames) % 2:
        raise ValueError(f"{name}: odd number of PCM bytes (truncated)")
    return np.frombuffer(frames, dtype="<i2").astype(np.float32) / np.float32(32768.0), int(rate)


def fixed_length(y: np.ndarray, n: int) -> np.ndarray:
    """``y`` right-padded with zeros or cut to exactly ``n`` samples."""
    y = np.asarray(y, dtype=np.float32)
    return y[:n] if len(y) >= n else np.pad(y, (0, n - len(y)))


def log_mel(y: np.ndarray, spec: MelSpec = DEFAULT) -> np.ndarray:
    """Log-mel power of one clip in dB, float32 (n_mels, frames), after pad/trim; row 0 = lowest band."""
    import librosa

    y = fixed_length(y, spec.n_samples)
    mel = librosa.feature.melspectrogram(y=y, hop_length=spec.hop_length, n_mels=spec.n_mels, center=True,
                                         **_filter_kwargs(spec))
    return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None).astype(np.float32)


def db_range(train_db: np.ndarray, spec: MelSpec = DEFAULT) -> tuple[float, float]:
    """(lo, hi) of the image mapping from the training split's dB values: hi = max, lo = hi - top_db."""
    hi = float(np.max(train_db))
    return hi - float(spec.top_db), hi


def to_image(db: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """dB spectrograms (..., n_mels, frames) -> uint8 images, highest band in row 0.

    ``lo`` maps to 0 and ``hi`` to 255 (values outside are clipped), so after the pipeline's
    ``x / 255 * 2 - 1`` the image spans [-1, 1].
    """
    x = (np.clip(db, lo, hi) - lo) / (hi - lo)
    return np.rint(np.flip(x, axis=-2) * 255.0).astype(np.uint8)


def image_to_db(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Inverse of :func:`to_image` for images in [-1, 1] (float, as the generator emits them).

    Accepts (H, W) or (1, H, W); returns float32 dB (n_mels, frames), row 0 = lowest band.
    """
    x = np.asarray(image, dtype=np.float32)
    if x.ndim == 3:
        if x.shape[0] != 1:
            raise ValueError(f"expected a 1-channel spectrogram image, got shape {x.shape}")
        x = x[0]
    if x.ndim != 2:
        raise ValueError(f"expected a spectrogram image (H, W) or (1, H, W), got shape {x.shape}")
    unit = (np.clip(x, -1.0, 1.0) + 1.0) / 2.0
    return np.flip(unit, axis=0) * np.float32(hi - lo) + np.float32(lo)


def image_to_audio(image: np.ndarray, lo: float, hi: float, spec: MelSpec = DEFAULT, n_iter: int = 64,
                   seed: int = 0) -> np.ndarray:
    """A waveform for one spectrogram image by Griffin-Lim (librosa), for listening.

    Parameters
    ----------
    image : float array (H, W) or (1, H, W) in [-1, 1]
        A generated (or real, scaled) spectrogram image.
    lo, hi : float
        The domain's dB range (recorded in the decoded cache's manifest, ``meta``).
    spec : MelSpec
        The parameters the images were made with.
    n_iter : int
        Griffin-Lim iterations.
    seed : int
        Seeds Griffin-Lim's random initial phase, so the waveform is reproducible.

    Returns
    -------
    ndarray of float32, shape (spec.n_samples,), peak-normalised to at most 0.99 (silence stays 0).
    """
    import librosa

    db = image_to_db(image, lo, hi)
    if db.shape != spec.shape:
        raise ValueError(f"spectrogram of shape {db.shape}, expected {spec.shape} for {spec}")
    power = librosa.db_to_power(db, ref=1.0)
    # mel -> linear magnitude (librosa's NNLS), then Griffin-Lim with a seeded initial phase.
    magnitude = librosa.feature.inverse.mel_to_stft(power, **_filter_kwargs(spec))
    y = librosa.griffinlim(magnitude, n_iter=n_iter, hop_length=spec.hop_length, n_fft=spec.n_fft, center=True,
                           length=spec.n_samples, random_state=np.random.default_rng(seed))
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    return (y * (0.99 / peak) if peak > 0 else y).astype(np.float32)


def to_int16(y: np.ndarray) -> np.ndarray:
    """float waveform in [-1, 1] -> int16 PCM (clipped), for WAV files or result-file arrays."""
    return np.rint(np.clip(np.asarray(y, dtype=np.float64), -1.0, 1.0) * 32767.0).astype(np.int16)


def wav_bytes(y: np.ndarray, sample_rate: int) -> bytes:
    """A 16-bit mono PCM WAV file holding ``y`` (float in [-1, 1] or int16)."""
    pcm = y if np.asarray(y).dtype == np.int16 else to_int16(y)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(np.asarray(pcm, dtype="<i2").tobytes())
    return buf.getvalue()
