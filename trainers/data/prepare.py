"""`tonesweep prepare`: recordings of one instrument -> a cached, sharded features dataset.

Layout and reading API: docs/architecture.md, section 1. In short::

    DATASET/manifest.json                         written last; its presence means "complete"
    DATASET/{train,validation}-SSSSS-of-NNNNN.tfrecord   tf.train.Example shards

Pipeline (``prepare_dataset``):
  1. collect inputs (files, or audio files found in folders), hash them; if the dataset at OUT
     was built from the same bytes with the same parameters, stop: cache hit.
  2. decode to 16 kHz mono; skip unusable files with a one-line warning (empty, silent, too
     short, not audio, corrupt, truncated, no pitched content). Nothing usable -> UserError.
  3. features once per whole file (f0 in worker processes, in fixed-length chunks so the
     result does not depend on the number of workers; loudness/RMS with ddsp in this process).
  4. split by time regions: whole blocks of audio go to validation, the rest to train, and
     4 s windows are cut inside each region only, so no window overlaps both sides.
  5. write shards + manifest into a temporary sibling folder, then swap it into place.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from common.constants import SAMPLE_RATE
from trainers.data.audio import is_audio_path, load_audio
from trainers.data.dataset import (FEATURE_NAMES, FORMAT, MANIFEST, SHARD_DIGESTS, SPLITS, dataset_files, read_manifest,
                                    write_split)
from trainers.data.features import (MIN_STEADY_FRACTION, FeatureParams, f0_voicing, fill_unvoiced, level_features,
                                     n_frames, steady_fraction)
from common.bounds import COUNT, FRACTION, POSITIVE
from common.errors import UserError
from common.locks import sibling_lock, writer_lock
from common.files import (
    check_replaceable,
    give_umask_modes,
    private_tempdir,
    remove_stale_tempdirs,
    replace_owned,
    file_digests,
    sha256_file,
    write_json_atomic,
)
from common.paths import check_apart, check_name, check_output_folder
from trainers.runtime import import_tensorflow_quietly

# Bump when feature extraction or example cutting changes, so old caches are recomputed.
PIPELINE_VERSION = 3  # 2: validation in ~3 blocks; 3: pYIN's decoded voicing stored as f0_voiced

PITCH_CHUNK_SECONDS = 30.0  # unit of parallel pitch tracking
PITCH_CONTEXT_SECONDS = 1.0  # audio on each side of a chunk so the pitch HMM sees context
MAX_VALIDATION_BLOCK_SECONDS = 30.0
VALIDATION_BLOCKS = 3  # aim for this many held-out blocks (more places, fewer cut train windows)
SILENT_PEAK_DBFS = -60.0  # a file whose peak is below this is "all silent"
SILENT_EXAMPLE_DB = -70.0  # an example whose RMS never exceeds this is dropped

Warn = Callable[[str], None]


def _quiet(message: str) -> None:
    """The default for ``warn``/``info``: library code does not print; the CLI passes printers."""


# ----------------------------------------------------------------------------------------------
# options


@dataclass(frozen=True)
class PrepareOptions:
    """What a dataset is built with (all of it enters the cache key)."""

    instrument: str
    example_seconds: float = 4.0
    hop_seconds: float = 1.0
    validation_fraction: float = 0.15
    seed: int = 0
    features: FeatureParams = field(default_factory=FeatureParams)

    def validate(self) -> None:
        """Raise UserError naming the flag when a value cannot work."""
        if not self.instrument.strip():
            raise UserError("--instrument: empty; give the instrument's name, e.g. --instrument bansuri")
        check_name(self.instrument, "--instrument")
        POSITIVE.check(self.example_seconds, "--example-seconds")
        POSITIVE.check(self.hop_seconds, "--hop-seconds")
        FRACTION.check(self.validation_fraction, "--validation-fraction")
        low, high = self.features.f0_min_hz, self.features.f0_max_hz
        if not (0 < low < high < SAMPLE_RATE / 2):
            raise UserError(f"--fmin/--fmax: {low:g}..{high:g} Hz; need 0 < fmin < fmax < {SAMPLE_RATE // 2} Hz, "
                            "e.g. --fmin C2 --fmax C7")
        rates = self.features.frame_rates
        if not rates or any(r <= 0 or SAMPLE_RATE % r for r in rates):
            raise UserError(f"--frame-rates: {list(rates)}: each rate must divide {SAMPLE_RATE} Hz; use e.g. 250,50")
        window = min(self.features.loudness_n_fft, self.features.rms_frame_size)
        if any(SAMPLE_RATE // r > window for r in rates):  # ddsp's framing needs hop <= window
            raise UserError(f"--frame-rates: {list(rates)}: rates below {math.ceil(SAMPLE_RATE / window)} Hz "
                            f"skip audio between {window}-sample loudness windows; use e.g. 250,50")
        for name, seconds in (("--example-seconds", self.example_seconds), ("--hop-seconds", self.hop_seconds)):
            for rate in rates:
                if not _is_whole(seconds * rate):
                    raise UserError(f"{name}: {seconds} s is not a whole number of {rate} Hz frames; use e.g. 4 or 1")

    @property
    def example_samples(self) -> int:
        return round(self.example_seconds * SAMPLE_RATE)

    @property
    def hop_samples(self) -> int:
        return round(self.hop_seconds * SAMPLE_RATE)

    def to_dict(self) -> dict:
        return {
            "instrument": self.instrument, "example_seconds": self.example_seconds,
            "hop_seconds": self.hop_seconds, "validation_fraction": self.validation_fraction,
            "seed": self.seed, "features": self.features.to_dict(),
        }


def _is_whole(value: float) -> bool:
    return abs(value - round(value)) < 1e-9


# ----------------------------------------------------------------------------------------------
# inputs and cache key


@dataclass
class SourceFile:
    """One input file on its way through the pipeline."""

    path: Path
    sha256: str
    audio: np.ndarray | None = None  # float32 [n] at 16 kHz once decoded
    features: dict[str, np.ndarray] = field(default_factory=dict)  # whole-file features

    @property
    def seconds(self) -> float:
        return 0.0 if self.audio is None else len(self.audio) / SAMPLE_RATE


def collect_inputs(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Expand the AUDIO arguments: files as given, folders searched recursively for audio files
    (by name ending, skipping hidden ones).

    Raises UserError for a missing path or when nothing audio-like is found at all.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise UserError(f"{path}: no such file or folder; check the path")
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and is_audio_path(p)
                                and not _hidden(p.relative_to(path))))
        else:
            found.append(path)
    if not found:
        listed = ", ".join(str(p) for p in paths)
        raise UserError(f"{listed}: no audio files found (.wav, .flac, .ogg, .mp3, .aiff); point prepare at recordings")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return unique


def _hidden(relative: Path) -> bool:
    """Dot-files and dot-folders (e.g. a half-written ``.take.partial.wav``) are not inputs."""
    return any(part.startswith(".") for part in relative.parts)


def cache_key(options: PrepareOptions, input_hashes: Iterable[str]) -> str:
    """sha256 over the format, pipeline version, options and the inputs' contents (order-free)."""
    payload = {
        "format": FORMAT, "pipeline": PIPELINE_VERSION, "options": options.to_dict(),
        "inputs": sorted(input_hashes),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def cached_manifest(out_dir: Path, key: str) -> dict | None:
    """The existing dataset's manifest when it is complete and was built with ``key``."""
    try:
        manifest = read_manifest(out_dir)
    except UserError:
        return None
    if manifest.get("cache_key") != key:
        return None
    if not all((out_dir / name).is_file() for name in dataset_files(out_dir, manifest)):
        return None
    return manifest


# ----------------------------------------------------------------------------------------------
# decoding and per-file checks


def decode_and_check(source: SourceFile, options: PrepareOptions) -> str | None:
    """Decode ``source``; return why it is unusable (a one-line warning) or None when usable."""
    try:
        source.audio = load_audio(source.path)
    except UserError as err:
        return str(err)
    audio = source.audio
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak <= 10 ** (SILENT_PEAK_DBFS / 20):
        level = "digital silence" if peak == 0 else f"peak {20 * math.log10(peak):.0f} dBFS"
        return f"{source.path}: all silent ({level}); check the recording level or remove the file"
    if len(audio) < options.example_samples:
        return (
            f"{source.path}: {len(audio) / SAMPLE_RATE:.2f} s is shorter than one {options.example_seconds:g} s "
            f"example; use a longer recording or a smaller --example-seconds"
        )
    return None


def pitch_check(source: SourceFile, options: PrepareOptions) -> str | None:
    """Return a warning when the file has (almost) no pitched frames, else None."""
    rate = min(options.features.frame_rates)
    fraction = steady_fraction(source.features[f"f0_hz_{rate}"], source.features[f"f0_voiced_{rate}"])
    if fraction < MIN_STEADY_FRACTION:
        return (
            f"{source.path}: no pitched content ({100 * fraction:.1f}% of frames steadily voiced); check that it is a "
            f"recording of {options.instrument} (a pitched instrument), that its pitch lies within --fmin/--fmax, "
            "or remove it"
        )
    return None


# ----------------------------------------------------------------------------------------------
# features (parallel pitch tracking)


@dataclass(frozen=True)
class PitchJob:
    """A chunk of one file: core samples [start, end) tracked with context [lo, hi)."""

    file_index: int
    start: int
    end: int
    lo: int
    hi: int


def plan_pitch_jobs(lengths: Sequence[int], params: FeatureParams) -> list[PitchJob]:
    """Cut files into fixed chunks (independent of the worker count, so results are too).

    Chunk boundaries fall on multiples of every frame hop, so chunk frames line up with file frames.
    """
    grid = SAMPLE_RATE // math.gcd(*params.frame_rates)  # a multiple of every hop
    chunk = max(grid, round(PITCH_CHUNK_SECONDS * SAMPLE_RATE) // grid * grid)
    context = max(grid, round(PITCH_CONTEXT_SECONDS * SAMPLE_RATE) // grid * grid)
    jobs = []
    for index, length in enumerate(lengths):
        for start in range(0, length, chunk):
            end = min(start + chunk, length)
            if 0 < start and end - start < chunk // 3:  # fold a short tail into the previous chunk
                previous = jobs.pop()
                start = previous.start
            jobs.append(PitchJob(index, start, end, max(0, start - context), min(length, end + context)))
    return jobs


def _track_chunk(audio_chunk: np.ndarray, offset: int, core_len: int, params: FeatureParams) -> dict[str, np.ndarray]:
    """Pitch features of one chunk's core. Runs in worker processes (no TensorFlow here).

    Args: audio_chunk [hi-lo] samples; offset = start-lo; core_len = end-start.
    Returns: {"f0_hz_R", "f0_confidence_R", "f0_voiced_R"}, raw (unvoiced frames not yet interpolated).
    """
    out = {}
    for rate, (f0, confidence, voiced) in f0_voicing(audio_chunk, params, interpolate=False).items():
        first = offset * rate // SAMPLE_RATE
        count = n_frames(core_len, rate)
        out[f"f0_hz_{rate}"] = f0[first:first + count]
        out[f"f0_confidence_{rate}"] = confidence[first:first + count]
        out[f"f0_voiced_{rate}"] = voiced[first:first + count].astype(np.float32)
    return out


def compute_features(sources: list[SourceFile], params: FeatureParams, workers: int) -> None:
    """Fill ``source.features`` with every feature at every rate.

    Pitch (the expensive part) runs in ``workers`` processes while this process imports
    TensorFlow and computes loudness/RMS, so the two overlap.
    """
    jobs = plan_pitch_jobs([len(s.audio) for s in sources], params)
    args = [(sources[j.file_index].audio[j.lo:j.hi], j.start - j.lo, j.end - j.start, params) for j in jobs]
    if workers > 1 and len(jobs) > 1:
        with _pitch_pool(min(workers, len(jobs)), params) as pool:
            futures = [pool.submit(_track_chunk, *a) for a in args]  # workers start before TF loads here
            compute_levels(sources, params)
            results = [future.result() for future in futures]
    else:
        results = [_track_chunk(*a) for a in args]
        compute_levels(sources, params)
    _assemble_pitch(sources, jobs, results, params)


def _pitch_pool(workers: int, params: FeatureParams):
    """A process pool for :func:`_track_chunk` that never forks a running TensorFlow."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # fork is fastest and needs no `if __name__ == "__main__"` guard in the caller's script,
    # but forking a process whose TensorFlow thread pools are running can deadlock; then the
    # workers come from a clean forkserver process instead.
    method = "forkserver" if "tensorflow" in sys.modules else "fork"
    context = multiprocessing.get_context(method)
    if method == "fork":
        # import librosa and load the compiled Viterbi once here; forked workers inherit them
        _track_chunk(np.zeros(SAMPLE_RATE // 2, np.float32), 0, SAMPLE_RATE // 2, params)
    else:  # import pitch tracking once in the server, not in every worker
        context.set_forkserver_preload(["trainers.data.features", "librosa", "scipy.stats"])
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_die_with_parent)


def _assemble_pitch(sources: list[SourceFile], jobs: list[PitchJob], results: list[dict], params: FeatureParams):
    """Concatenate chunk results per file and interpolate f0 across unvoiced frames."""
    for index, source in enumerate(sources):
        parts = [r for j, r in zip(jobs, results) if j.file_index == index]
        for key in parts[0]:
            source.features[key] = np.concatenate([p[key] for p in parts])
        for rate in params.frame_rates:
            voiced = source.features[f"f0_voiced_{rate}"] > 0.5
            source.features[f"f0_hz_{rate}"] = fill_unvoiced(source.features[f"f0_hz_{rate}"], voiced)


def _die_with_parent() -> None:
    """Worker initializer: have Linux kill this worker when its parent dies.

    Without it, a prepare killed with SIGKILL leaves its pool workers waiting forever on the
    task queue. (No-op where prctl is unavailable.)
    """
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def compute_levels(sources: list[SourceFile], params: FeatureParams) -> None:
    """Add loudness and RMS (ddsp, TensorFlow) for every rate to each source's features."""
    for source in sources:
        source.features.update(level_features(source.audio, params))


# ----------------------------------------------------------------------------------------------
# split by regions and cut examples


@dataclass(frozen=True)
class Region:
    """A stretch [start, end) samples of one source that belongs wholly to one split."""

    source: int
    start: int
    end: int
    split: str


def plan_regions(lengths: Sequence[int], options: PrepareOptions, order_keys: Sequence[str]) -> list[Region]:
    """Choose whole validation blocks (seeded) and give the rest of every file to train.

    Blocks are ``B`` long (a third of the validation target, so validation samples several places,
    clamped between one example + one hop and 30 s), sit on a grid inside each file, and are drawn
    until they hold ``validation_fraction`` of the audio. ``order_keys`` (content
    hashes) make the choice independent of the order the files were given in.
    Returns regions sorted by (source, start).
    """
    total = sum(lengths)
    target = options.validation_fraction * total
    block = _validation_block(lengths, options, target)
    order = sorted(range(len(lengths)), key=lambda i: order_keys[i])
    slots = [(i, k * block) for i in order for k in range(lengths[i] // block)]
    rng = np.random.default_rng(options.seed)
    chosen: list[tuple[int, int]] = []
    for slot_index in rng.permutation(len(slots)):
        if block * len(chosen) >= target:
            break
        if total - block * (len(chosen) + 1) < options.example_samples:  # leave audio to train on
            break
        chosen.append(slots[slot_index])
    if not chosen:
        raise UserError(
            f"AUDIO: only {total / SAMPLE_RATE:.1f} s of usable audio, too little to hold out a "
            f"{block / SAMPLE_RATE:.1f} s validation region and still train; add recordings"
        )
    regions: list[Region] = []
    for i in range(len(lengths)):
        blocks = sorted(start for source, start in chosen if source == i)
        regions.extend(_file_regions(i, lengths[i], _merge([(s, s + block) for s in blocks])))
    return regions


def _validation_block(lengths: Sequence[int], options: PrepareOptions, target: float) -> int:
    """Validation block length in samples: target/3 within [example + hop, 30 s], whole hops,
    at most the longest file (so at least one slot exists), at least one example."""
    hop, example = options.hop_samples, options.example_samples
    block = min(MAX_VALIDATION_BLOCK_SECONDS * SAMPLE_RATE, max(example + hop, target / VALIDATION_BLOCKS))
    block = int(block) // hop * hop  # still >= example: floor((example + hop) / hop) * hop > example
    return max(example, min(block, max(lengths)))


def _merge(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in intervals:
        if merged and merged[-1][1] == start:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _file_regions(source: int, length: int, validation: list[tuple[int, int]]) -> list[Region]:
    regions, cursor = [], 0
    for start, end in validation:
        if start > cursor:
            regions.append(Region(source, cursor, start, "train"))
        regions.append(Region(source, start, end, "validation"))
        cursor = end
    if cursor < length:
        regions.append(Region(source, cursor, length, "train"))
    return regions


def window_starts(region: Region, options: PrepareOptions) -> list[int]:
    """Start samples of the examples inside ``region`` (every hop, fully inside)."""
    last = region.end - options.example_samples
    return list(range(region.start, last + 1, options.hop_samples)) if last >= region.start else []


def cut_example(source: SourceFile, start: int, options: PrepareOptions) -> dict[str, np.ndarray]:
    """One example: audio [n_samples] and each feature_R [example_seconds * R], float32."""
    example = {"audio": source.audio[start:start + options.example_samples]}
    for rate in options.features.frame_rates:
        first, count = start * rate // SAMPLE_RATE, round(options.example_seconds * rate)
        for name in FEATURE_NAMES:
            example[f"{name}_{rate}"] = source.features[f"{name}_{rate}"][first:first + count]
    return example


def is_silent(example: dict[str, np.ndarray], options: PrepareOptions) -> bool:
    rate = min(options.features.frame_rates)
    return float(example[f"rms_db_{rate}"].max()) < SILENT_EXAMPLE_DB


# ----------------------------------------------------------------------------------------------
# statistics


def feature_stats(sources: list[SourceFile], regions: list[Region], options: PrepareOptions) -> dict:
    """{rate: {f0_midi|loudness_db|rms_db: {mean, std, min, max, p5, p50, p95}}} over train regions.

    Each frame counts once (windows overlap, regions do not); f0 over voiced frames only.
    """
    stats = {}
    for rate in options.features.frame_rates:
        pieces: dict[str, list[np.ndarray]] = {"f0_midi": [], "loudness_db": [], "rms_db": []}
        for region in (r for r in regions if r.split == "train"):
            feats = sources[region.source].features
            lo, hi = region.start * rate // SAMPLE_RATE, region.end * rate // SAMPLE_RATE
            voiced = feats[f"f0_voiced_{rate}"][lo:hi] > 0.5
            f0 = feats[f"f0_hz_{rate}"][lo:hi][voiced]
            pieces["f0_midi"].append(69.0 + 12.0 * np.log2(np.maximum(f0, 1e-3) / 440.0))
            pieces["loudness_db"].append(feats[f"loudness_db_{rate}"][lo:hi])
            pieces["rms_db"].append(feats[f"rms_db_{rate}"][lo:hi])
        stats[str(rate)] = {name: _summary(np.concatenate(parts)) for name, parts in pieces.items()}
    return stats


def _summary(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {k: float("nan") for k in ("mean", "std", "min", "max", "p5", "p50", "p95")}
    p5, p50, p95 = np.percentile(values, [5, 50, 95])
    return {
        "mean": float(values.mean()), "std": float(values.std()), "min": float(values.min()),
        "max": float(values.max()), "p5": float(p5), "p50": float(p50), "p95": float(p95),
    }


# ----------------------------------------------------------------------------------------------
# writing



def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for package in ("tonesweep", "numpy", "librosa", "soundfile", "tensorflow", "ddsp"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "unknown"
    import soundfile

    out["libsndfile"] = soundfile.__libsndfile_version__
    return out


# ----------------------------------------------------------------------------------------------
# atomic replacement of the output folder


def check_output_dir(out_dir: Path, force: bool = False) -> list[str]:
    """Refuse an OUT that is a file, or a folder holding files this tonesweep dataset did not write
    (unless ``force``: they are then kept). Returns the files the existing dataset owns."""
    owned = owned_files(out_dir)
    if out_dir.is_dir() and not owned and any(out_dir.iterdir()) and not force:
        raise UserError(f"{out_dir}: --out is a non-empty folder that is not a tonesweep dataset; choose a new or "
                        "empty folder, or pass --force to build the dataset beside its files (they are kept)")
    check_replaceable(out_dir, owned, "dataset", "--out", force)
    return owned


def owned_files(out_dir: Path) -> list[str]:
    """What the dataset at ``out_dir`` wrote: its manifest and the shards it lists ([] if none)."""
    try:
        return dataset_files(out_dir, read_manifest(out_dir))
    except UserError:
        return []


def _staging_prefix(out_dir: Path) -> str:
    return f".{out_dir.name}.tmp-"


def remove_stale_temporaries(out_dir: Path) -> None:
    """Delete the staging folders of prepares that were killed (their process is gone)."""
    for kind in ("tmp", "old"):  # "old": where earlier versions moved a replaced dataset
        remove_stale_tempdirs(f".{out_dir.name}.{kind}-", out_dir.parent)


# ----------------------------------------------------------------------------------------------
# prepare


def prepare_dataset(
    audio_paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    options: PrepareOptions,
    workers: int | None = None,
    warn: Warn = _quiet,
    info: Warn = _quiet,
    force: bool = False,
) -> dict:
    """Build (or reuse) the dataset at ``out_dir`` from ``audio_paths``; returns its manifest.

    The manifest has ``cache_hit`` set to True when nothing was recomputed (not stored on disk).
    ``force``: build into a folder that holds other files too (they are kept).
    """
    began = time.perf_counter()
    options.validate()
    out_dir = Path(out_dir).absolute()
    workers = workers if workers is not None else len(os.sched_getaffinity(0))
    COUNT.check(workers, "--workers")
    check_apart(out_dir, audio_paths, "--out")
    check_output_folder(out_dir, "--out")
    paths = collect_inputs(audio_paths)
    with writer_lock(sibling_lock(out_dir), f"dataset {out_dir}", "--out", took_over=warn):  # one writer at a time
        return _prepare_locked(paths, out_dir, options, workers, warn, info, force, began)


def _prepare_locked(paths: list[Path], out_dir: Path, options: PrepareOptions, workers: int, warn: Warn, info: Warn,
                    force: bool, began: float) -> dict:
    owned = check_output_dir(out_dir, force)
    remove_stale_temporaries(out_dir)
    sources = [SourceFile(path, sha256_file(path)) for path in paths]
    key = cache_key(options, (s.sha256 for s in sources))
    cached = cached_manifest(out_dir, key)
    if cached is not None:
        info(f"cache hit: {out_dir} is up to date ({_counts(cached)}); nothing recomputed "
             f"({time.perf_counter() - began:.2f} s)")
        return {**cached, "cache_hit": True}

    # TensorFlow (ddsp's loudness, the TFRecords), imported quietly and only now: a cache hit never pays its ~8 s
    import_tensorflow_quietly()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    usable, skipped = _usable_sources(sources, options, workers, warn, info)
    manifest = _build(usable, skipped, out_dir, owned, options, key, began, info)
    return {**manifest, "cache_hit": False}


def _usable_sources(sources: list[SourceFile], options: PrepareOptions, workers: int, warn: Warn, info: Warn):
    """Decode, check and compute features; returns (usable sources, [{path, sha256, reason}])."""
    seen: dict[str, Path] = {}
    skipped: list[dict] = []

    def decodes_once(source: SourceFile) -> str | None:
        if source.sha256 in seen:
            return f"{source.path}: same content as {seen[source.sha256]}; using it once"
        seen[source.sha256] = source.path
        return decode_and_check(source, options)

    usable = _screen(sources, decodes_once, skipped, warn)
    if usable:
        minutes = sum(s.seconds for s in usable) / 60
        info(f"{len(usable)} file(s), {minutes:.1f} min of audio: tracking pitch with {workers} worker(s)")
        compute_features(usable, options.features, workers)
    pitched = _screen(usable, lambda source: pitch_check(source, options), skipped, warn)
    if not pitched:
        raise UserError(
            f"{sources[0].path if len(sources) == 1 else 'AUDIO'}: none of the {len(sources)} input file(s) is usable "
            "(see the warnings above); give prepare recordings of a pitched instrument, at least "
            f"{options.example_seconds:g} s long"
        )
    return pitched, skipped


def _screen(sources: list[SourceFile], problem_of, skipped: list[dict], warn: Warn) -> list[SourceFile]:
    """The sources for which `problem_of(source)` is None; each other one is warned about (one line)
    and recorded in `skipped` as {path, sha256, reason}, in input order."""
    kept = []
    for source in sources:
        reason = problem_of(source)
        if reason:
            warn(reason)
            skipped.append({"path": str(source.path), "sha256": source.sha256, "reason": reason})
        else:
            kept.append(source)
    return kept


def _build(sources, skipped, out_dir: Path, owned: list[str], options: PrepareOptions, key: str, began: float,
           info: Warn) -> dict:
    """Split, shards and manifest (features already computed), built in a staging sibling, then
    moved in replacing only the files the previous dataset (``owned``) wrote."""
    regions = plan_regions([len(s.audio) for s in sources], options, [s.sha256 for s in sources])
    examples, region_records, dropped = cut_examples(sources, regions, options)
    for split in SPLITS:
        if not examples[split]:
            raise UserError(
                f"AUDIO: the {split} split would have no examples ({sum(s.seconds for s in sources):.1f} s usable "
                "audio, silent stretches dropped); add recordings or lower --example-seconds"
            )
    building = private_tempdir(_staging_prefix(out_dir), out_dir.parent)
    try:
        split_records = {}
        for split in SPLITS:
            shards = write_split(building, split, examples[split])
            seconds = sum((r.end - r.start) / SAMPLE_RATE for r in regions if r.split == split)
            split_records[split] = {"examples": len(examples[split]), "seconds": round(seconds, 3), "shards": shards}
        manifest = {
            **_describe(options, key),
            "inputs": [{"path": str(s.path), "sha256": s.sha256, "seconds": round(s.seconds, 3)} for s in sources],
            "skipped_inputs": skipped,
            "splits": split_records,
            SHARD_DIGESTS: file_digests(building, [name for record in split_records.values() for name in record["shards"]]),
            "regions": region_records,
            "dropped_silent_examples": dropped,
            "stats": feature_stats(sources, regions, options),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": _versions(),
            "prepare_seconds": round(time.perf_counter() - began, 2),
        }
        write_json_atomic(building / MANIFEST, manifest)  # last file: marks the folder complete
        give_umask_modes(building)
        replace_owned(building, out_dir, owned, MANIFEST)
    except BaseException:  # including KeyboardInterrupt: never leave a half-built folder behind
        shutil.rmtree(building, ignore_errors=True)
        raise
    info(f"wrote {out_dir} ({_counts(manifest)}) in {manifest['prepare_seconds']:.1f} s")
    return manifest


def cut_examples(sources: list[SourceFile], regions: list[Region], options: PrepareOptions):
    """Examples of every region, silent ones dropped.

    Returns ({split: [example dicts]}, [region records for the manifest], dropped count).
    """
    examples: dict[str, list] = {split: [] for split in SPLITS}
    records, dropped = [], 0
    for region in regions:
        kept = 0
        for start in window_starts(region, options):
            example = cut_example(sources[region.source], start, options)
            if is_silent(example, options):
                dropped += 1
                continue
            examples[region.split].append(example)
            kept += 1
        records.append({"input": region.source, "split": region.split, "start_s": region.start / SAMPLE_RATE,
                        "end_s": region.end / SAMPLE_RATE, "examples": kept})
    return examples, records, dropped


def _describe(options: PrepareOptions, key: str) -> dict:
    """The manifest's format and parameter fields."""
    rates = list(options.features.frame_rates)
    return {
        "format": FORMAT,
        "instrument": options.instrument,
        "sample_rate": SAMPLE_RATE,
        "example_seconds": options.example_seconds,
        "hop_seconds": options.hop_seconds,
        "frame_rates": rates,
        "validation_fraction": options.validation_fraction,
        "seed": options.seed,
        "features": options.features.to_dict(),
        "feature_keys": ["audio"] + [f"{name}_{rate}" for rate in rates for name in FEATURE_NAMES],
        "cache_key": key,
        "pipeline_version": PIPELINE_VERSION,
    }


def _counts(manifest: dict) -> str:
    train, validation = manifest["splits"]["train"], manifest["splits"]["validation"]
    skipped = len(manifest.get("skipped_inputs", []))
    return (f"{train['examples']} train / {validation['examples']} validation examples "
            f"from {len(manifest['inputs'])} file(s)" + (f", {skipped} skipped" if skipped else ""))
