"""prepare: dataset format, leakage-free split, feature alignment, cache hit/invalidation,
atomicity, worker-count independence, and load_split speed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainers.data import prepare as ds
from trainers.data.dataset import load_split, read_manifest, tf_dataset
from trainers.data.prepare import PrepareOptions, prepare_dataset
from common.errors import UserError
from trainers.data.features import FeatureParams, loudness_db

FAST = FeatureParams(frame_rates=(50,))  # pitch at 50 Hz only: 5x cheaper, enough for these checks


def fast_options(**changes) -> PrepareOptions:
    return PrepareOptions(instrument="tone", features=FAST, **changes)


@pytest.fixture()
def tone_folder(tmp_path, make_tone) -> Path:
    """Two short recordings at 44.1 kHz stereo 24-bit and 22.05 kHz mono (exercises resampling)."""
    folder = tmp_path / "takes"
    folder.mkdir()
    make_tone(folder / "a.wav", 9.0, sample_rate=44100, channels=2, subtype="PCM_24")
    make_tone(folder / "b.flac", 7.0, sample_rate=22050, f0_hz=440.0)
    (folder / "notes.txt").write_text("not audio, and not looked at: folders contribute audio files only")
    (folder / ".a.partial.wav").write_bytes(b"RIFF")  # a half-written render: hidden, so not an input
    return folder


# ---------------------------------------------------------------------------------------------- format


def test_manifest_has_the_contract_keys(tiny_dataset):
    manifest = read_manifest(tiny_dataset)
    for key in ("format", "instrument", "sample_rate", "example_seconds", "hop_seconds", "frame_rates",
                "inputs", "cache_key", "splits", "stats", "created", "versions"):
        assert key in manifest, key
    assert manifest["format"] == "tonesweep-dataset/1" and manifest["sample_rate"] == 16000
    assert manifest["frame_rates"] == [250, 50] and manifest["instrument"] == "bansuri"
    assert len(manifest["inputs"][0]["sha256"]) == 64 and manifest["inputs"][0]["seconds"] == pytest.approx(36.0)
    for rate in ("250", "50"):
        for name in ("f0_midi", "loudness_db", "rms_db"):
            stats = manifest["stats"][rate][name]
            assert set(stats) == {"mean", "std", "min", "max", "p5", "p50", "p95"}
            assert stats["min"] <= stats["p5"] <= stats["p50"] <= stats["p95"] <= stats["max"]
    assert 55 < manifest["stats"]["50"]["f0_midi"]["p50"] < 85  # bansuri around E4-E6
    for split in ("train", "validation"):
        for shard in manifest["splits"][split]["shards"]:
            assert (tiny_dataset / shard).is_file()


@pytest.mark.parametrize("rate", [250, 50])
def test_load_split_shapes_and_exact_frame_counts(tiny_dataset, rate):
    manifest = read_manifest(tiny_dataset)
    for split in ("train", "validation"):
        data = load_split(tiny_dataset, split, rate)
        n = manifest["splits"][split]["examples"]
        assert data["audio"].shape == (n, 64000)
        for key in ("f0_hz", "f0_confidence", "loudness_db", "rms_db"):
            assert data[key].shape == (n, 4 * rate) and data[key].dtype == np.float32, key
        assert np.all(data["f0_hz"] > 0) and np.all((data["f0_confidence"] >= 0) & (data["f0_confidence"] <= 1))
    assert read_manifest(tiny_dataset)["splits"]["validation"]["examples"] >= 2


def test_load_split_twice_gives_the_same_arrays(tiny_dataset):
    # (its speed is measured in bench/, not asserted here)
    first = load_split(tiny_dataset, "train", 250)
    again = load_split(tiny_dataset, "train", 250)
    assert set(first) == set(again)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])


def test_tf_dataset_streams_the_same_examples(tiny_dataset):
    first = next(iter(tf_dataset(tiny_dataset, "validation", 50)))
    loaded = load_split(tiny_dataset, "validation", 50)
    for key, value in first.items():
        np.testing.assert_array_equal(value.numpy(), loaded[key][0])


def test_unknown_frame_rate_and_missing_dataset_are_user_errors(tiny_dataset, tmp_path):
    with pytest.raises(UserError, match="100 Hz"):
        load_split(tiny_dataset, "train", 100)
    with pytest.raises(UserError, match="no such dataset"):
        read_manifest(tmp_path / "nothing")


def test_stored_features_line_up_with_the_example_audio(tiny_dataset):
    """Features were computed on whole files and sliced: they must match features of the slice
    itself away from the slice's edges (where the whole-file version sees more context)."""
    data = load_split(tiny_dataset, "train", 250)
    recomputed = loudness_db(data["audio"][:3], 250)
    np.testing.assert_allclose(recomputed[:, 4:-4], data["loudness_db"][:3, 4:-4], atol=0.05)


def test_no_example_overlaps_both_splits(tiny_dataset):
    manifest = read_manifest(tiny_dataset)
    regions = manifest["regions"]
    for a in regions:
        for b in regions:
            if a is not b and a["input"] == b["input"]:
                assert a["end_s"] <= b["start_s"] or b["end_s"] <= a["start_s"], (a, b)
    for split in ("train", "validation"):
        counted = sum(r["examples"] for r in regions if r["split"] == split)
        assert counted == manifest["splits"][split]["examples"]
    # and the audio itself: no validation example shares a 4 s window of samples with a train one
    train = load_split(tiny_dataset, "train", 50)["audio"]
    validation = load_split(tiny_dataset, "validation", 50)["audio"]
    fingerprints = {row[::1000].tobytes() for row in train}
    assert not any(row[::1000].tobytes() in fingerprints for row in validation)


def test_plan_regions_holds_out_whole_blocks_independent_of_input_order():
    options = fast_options(validation_fraction=0.2, seed=3)
    lengths = [16000 * 60, 16000 * 45, 16000 * 20]
    keys = ["c", "a", "b"]
    regions = ds.plan_regions(lengths, options, keys)
    held = sum(r.end - r.start for r in regions if r.split == "validation")
    assert 0.2 * sum(lengths) <= held <= 0.2 * sum(lengths) + 30 * 16000
    reordered = ds.plan_regions(lengths[::-1], options, keys[::-1])
    as_set = {(keys[r.source], r.start, r.end, r.split) for r in regions}
    assert as_set == {(keys[::-1][r.source], r.start, r.end, r.split) for r in reordered}
    for region in regions:
        for start in ds.window_starts(region, options):
            assert region.start <= start and start + options.example_samples <= region.end


# ---------------------------------------------------------------------------------------------- cache


def test_cache_hit_then_invalidation_by_params_and_by_content(tone_folder, tmp_path, make_tone):
    out = tmp_path / "dataset"
    first = prepare_dataset([tone_folder], out, fast_options(), workers=1, warn=pytest.fail)
    assert not first["cache_hit"] and len(first["inputs"]) == 2  # notes.txt was not considered
    stamp = (out / "manifest.json").stat().st_mtime_ns

    again = prepare_dataset([tone_folder], out, fast_options(), workers=1, warn=pytest.fail)
    assert again["cache_hit"]
    assert (out / "manifest.json").stat().st_mtime_ns == stamp

    changed = prepare_dataset([tone_folder], out, fast_options(hop_seconds=2.0), workers=1)
    assert not changed["cache_hit"] and changed["cache_key"] != first["cache_key"]
    assert changed["splits"]["train"]["examples"] < first["splits"]["train"]["examples"]

    make_tone(tone_folder / "a.wav", 9.0, sample_rate=44100, channels=2, subtype="PCM_24", f0_hz=300.0)
    edited = prepare_dataset([tone_folder], out, fast_options(hop_seconds=2.0), workers=1)
    assert not edited["cache_hit"] and edited["cache_key"] != changed["cache_key"]
    a_hash = {Path(i["path"]).name: i["sha256"] for i in edited["inputs"]}["a.wav"]
    assert a_hash != {Path(i["path"]).name: i["sha256"] for i in first["inputs"]}["a.wav"]


def test_cli_reports_a_cache_hit(tone_folder, tmp_path, capsys):
    from cli.main import main

    argv = ["prepare", "--instrument", "tone", "--frame-rates", "50", "--workers", "1",
            "--out", str(tmp_path / "d"), str(tone_folder)]
    assert main(argv) == 0
    assert main(argv) == 0
    assert "cache hit" in capsys.readouterr().err
    # a cache hit in a fresh process never loads TensorFlow (its import alone is several seconds)
    import subprocess
    import sys

    probe = (f"import sys; from cli.main import main; code = main({argv!r}); "
             "print(code, 'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["0", "False"], out.stderr[-2000:]


# ---------------------------------------------------------------------------------------------- atomicity


def _fail_after_first_shard(monkeypatch):
    real = ds.write_split

    def failing(folder, split, examples):
        names = real(folder, split, examples)
        if split == "validation":
            raise KeyboardInterrupt("simulated interruption after the shards, before the manifest")
        return names

    monkeypatch.setattr(ds, "write_split", failing)


def test_failed_prepare_leaves_no_dataset_and_no_debris(tone_folder, tmp_path, monkeypatch):
    out = tmp_path / "dataset"
    _fail_after_first_shard(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset([tone_folder], out, fast_options(), workers=1)
    assert not out.exists()
    assert list(tmp_path.glob(".dataset.*")) == []


def test_failed_prepare_keeps_the_previous_good_dataset(tone_folder, tmp_path, monkeypatch):
    out = tmp_path / "dataset"
    good = prepare_dataset([tone_folder], out, fast_options(), workers=1)
    before = {p.name: p.stat().st_size for p in out.iterdir()}
    _fail_after_first_shard(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset([tone_folder], out, fast_options(hop_seconds=2.0), workers=1)
    assert {p.name: p.stat().st_size for p in out.iterdir()} == before
    assert read_manifest(out)["cache_key"] == good["cache_key"]
    assert list(tmp_path.glob(".dataset.*")) == []


def test_killed_prepare_debris_never_looks_complete_and_is_cleaned(tone_folder, tmp_path):
    out = tmp_path / "dataset"
    debris = tmp_path / ".dataset.tmp-999999999-deadbeef"  # what a SIGKILLed prepare leaves behind
    debris.mkdir()
    (debris / "train-00000-of-00001.tfrecord").write_bytes(b"partial")
    with pytest.raises(UserError, match="no such dataset"):
        read_manifest(out)
    prepare_dataset([tone_folder], out, fast_options(), workers=1)
    assert not debris.exists() and read_manifest(out)


# ---------------------------------------------------------------------------------------------- parallel


def test_worker_count_does_not_change_the_dataset(rendered_audio, tmp_path, monkeypatch):
    monkeypatch.setattr(ds, "PITCH_CHUNK_SECONDS", 6.0)  # several chunks from 20 s of audio
    wav = [rendered_audio / "voice" / "voice-0.wav"]
    one = prepare_dataset(wav, tmp_path / "one", fast_options(), workers=1)
    two = prepare_dataset(wav, tmp_path / "two", fast_options(), workers=2)
    assert one["stats"] == two["stats"]
    for split in ("train", "validation"):
        a, b = load_split(tmp_path / "one", split, 50), load_split(tmp_path / "two", split, 50)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_chunked_pitch_tracking_matches_whole_file_tracking(rendered_audio, monkeypatch):
    from trainers.data.audio import load_audio
    from trainers.data.features import f0_features

    audio = load_audio(rendered_audio / "bansuri" / "bansuri-0.wav")
    whole_f0, whole_conf = f0_features(audio, FAST)[50]
    monkeypatch.setattr(ds, "PITCH_CHUNK_SECONDS", 5.0)
    source = ds.SourceFile(Path("x.wav"), "0" * 64, audio=audio)
    ds.compute_features([source], FAST, workers=1)
    np.testing.assert_allclose(source.features["f0_confidence_50"], whole_conf, atol=1e-6)
    voiced = whole_conf >= 0.5
    cents = 1200 * np.abs(np.log2(source.features["f0_hz_50"][voiced] / whole_f0[voiced]))
    assert np.mean(cents < 10) >= 0.99


# ---------------------------------------------------------------------------------------------- decoding

FORMATS = [  # (container, subtype, sample rate, channels)
    ("WAV", "PCM_U8", 8000, 1), ("WAV", "PCM_24", 48000, 2), ("WAV", "FLOAT", 96000, 1),
    ("FLAC", "PCM_24", 44100, 6), ("OGG", "VORBIS", 32000, 2), ("MP3", "MPEG_LAYER_III", 44100, 2),
    ("AIFF", "PCM_16", 22050, 1),
]


@pytest.mark.parametrize("container,subtype,rate,channels", FORMATS)
def test_common_formats_decode_to_16k_mono_at_the_right_pitch(tmp_path, container, subtype, rate, channels):
    import soundfile as sf

    from support.audio import synth_tone
    from trainers.data.audio import load_audio
    from trainers.data.features import f0_features

    if container not in sf.available_formats():
        pytest.skip(f"this libsndfile cannot write {container}")
    tone = synth_tone(2.0, rate, f0_hz=330.0)
    path = tmp_path / f"tone.{container.lower()}"
    sf.write(str(path), np.stack([tone] * channels, axis=1) if channels > 1 else tone, rate,
             format=container, subtype=subtype)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1 and abs(len(audio) - 32000) <= 16
    assert 0.25 < np.abs(audio).max() < 0.35
    f0, confidence = f0_features(audio, FAST)[50]
    assert np.median(f0[confidence >= 0.5]) == pytest.approx(330.0, rel=0.01)


def test_other_example_length_and_hop(tone_folder, tmp_path):
    out = tmp_path / "short-examples"
    manifest = prepare_dataset([tone_folder], out, fast_options(example_seconds=2.0, hop_seconds=0.5), workers=1)
    data = load_split(out, "train", 50)
    assert data["audio"].shape[1] == 32000 and data["f0_hz"].shape[1] == 100
    assert len(data["audio"]) == manifest["splits"]["train"]["examples"]
    starts = [r for r in manifest["regions"] if r["split"] == "train"]
    assert sum(int((r["end_s"] - r["start_s"] - 2.0) / 0.5) + 1 for r in starts if r["end_s"] - r["start_s"] >= 2.0) \
        == manifest["splits"]["train"]["examples"]
