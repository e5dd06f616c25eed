"""Decoding recordings into the one format tonesweep works in: 16 kHz mono float32.

Reads WAV (any PCM bit depth or float), FLAC, OGG/Vorbis, MP3 (libsndfile >= 1.1 has it),
AIFF and the other formats libsndfile knows, at any sample rate and channel count.
Channels are averaged to mono; the rate is converted with soxr (high quality) through librosa.

Every problem a user can fix is raised as ``UserError("<file>: <what>; <fix>")``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from common.constants import SAMPLE_RATE
from common.errors import UserError
from common.files import write_bytes

# File name endings considered audio when a folder is given to `prepare`. Anything else in a
# folder (notes, the demo's .f0.csv ground truth, images) is ignored without a warning.
AUDIO_EXTENSIONS = (".wav", ".wave", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".aifc", ".w64", ".rf64", ".caf")

# A WAV header that promises more sample frames than the file holds means the file was cut off
# while copying or recording; anything beyond this tolerance is reported as truncated.
_TRUNCATION_TOLERANCE_FRAMES = 1


def is_audio_path(path: Path) -> bool:
    """True when the file name ends like an audio file (case-insensitive)."""
    return path.name.lower().endswith(AUDIO_EXTENSIONS)


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode ``path`` into mono float32 samples at ``sample_rate``.

    Returns: float32 array [n_samples], values nominally in [-1, 1].
    Raises: UserError for a missing, empty, non-audio, corrupt or truncated file.
    """
    path = Path(path)
    audio, source_rate = _read_native(path)
    mono = audio.mean(axis=1) if audio.ndim == 2 else audio
    return resample(mono.astype(np.float32), source_rate, sample_rate)


def resample(audio: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Resample float32 [n] from ``source_rate`` to ``target_rate`` (soxr 'HQ' via librosa)."""
    if source_rate == target_rate:
        return np.ascontiguousarray(audio, dtype=np.float32)
    import librosa  # imported here: librosa costs ~1 s and most callers never resample

    out = librosa.resample(audio, orig_sr=source_rate, target_sr=target_rate, res_type="soxr_hq")
    return out.astype(np.float32)


SOUNDFILE_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".aiff": "AIFF", ".aif": "AIFF"}


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write float audio [n] as 16-bit PCM (clipped to [-1, 1]), in the format its name ends in (WAV
    by default). Encoded in memory, then written: a full disk is an ``OSError`` naming the file, where
    libsndfile would say only "System error"."""
    path = Path(path)
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16",
             format=SOUNDFILE_FORMATS.get(path.suffix.lower(), "WAV"))
    write_bytes(path, buffer.getvalue())


def _read_native(path: Path) -> tuple[np.ndarray, int]:
    """Decode at the file's own rate: (float32 [n] or [n, channels], sample_rate)."""
    if not path.exists():
        raise UserError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, expected an audio file; pass the files inside it")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: empty file (0 bytes); re-export or re-copy the recording")
    try:
        with sf.SoundFile(str(path)) as handle:
            promised_frames = handle.frames
            source_rate = handle.samplerate
            audio = handle.read(dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise UserError(
            f"{path}: not a readable audio file ({_first_line(err)}); "
            "convert it to WAV or FLAC, or remove it from the inputs"
        ) from None
    _check_complete(path, audio, promised_frames, source_rate)
    if audio.size == 0:
        raise UserError(f"{path}: contains no audio samples; re-export or re-copy the recording")
    if not np.all(np.isfinite(audio)):
        raise UserError(f"{path}: contains NaN or infinite samples; re-export it as PCM WAV or FLAC")
    return audio, source_rate


def _check_complete(path: Path, audio: np.ndarray, promised_frames: int, source_rate: int) -> None:
    """Raise if the header promised more frames than could be decoded (a cut-off file)."""
    got = audio.shape[0]
    if promised_frames - got > _TRUNCATION_TOLERANCE_FRAMES:
        raise UserError(
            f"{path}: truncated (header says {promised_frames / source_rate:.2f} s, "
            f"file holds {got / source_rate:.2f} s); re-copy or re-export the recording"
        )
    # libsndfile trusts the header's data size for WAV; a file cut inside its header or whose
    # data chunk is shorter than declared shows up as fewer bytes on disk than the header needs.
    if path.suffix.lower() in (".wav", ".wave"):
        _check_wav_size(path)


def _check_wav_size(path: Path) -> None:
    """Compare a RIFF/WAVE file's declared data chunk size with the bytes actually present."""
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return  # RF64 and other variants: libsndfile's own checks apply
        size_on_disk = os.fstat(handle.fileno()).st_size
        position = 12
        while True:
            chunk_header = handle.read(8)
            if len(chunk_header) < 8:
                return
            chunk_id, chunk_size = chunk_header[:4], int.from_bytes(chunk_header[4:], "little")
            if chunk_id == b"data":
                missing = position + 8 + chunk_size - size_on_disk
                if missing > 0 and chunk_size != 0xFFFFFFFF:
                    raise UserError(
                        f"{path}: truncated ({missing} bytes of audio data missing at the end); "
                        "re-copy or re-export the recording"
                    )
                return
            position += 8 + chunk_size + (chunk_size & 1)
            handle.seek(position)


def _first_line(err: Exception) -> str:
    """libsndfile's reason without its "Error opening '<path>': " prefix (the path leads the line)."""
    text = str(err).strip().splitlines()
    line = text[0] if text else type(err).__name__
    return line.split("': ", 1)[1] if line.startswith("Error opening '") and "': " in line else line
