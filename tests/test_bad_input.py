"""Bad input to `tonesweep prepare`: one clear line naming the file and the fix, never a traceback.

Policy: a problem with one file's content (not audio, corrupt, truncated, empty, silent, too short,
no pitch) skips that file with a warning; a missing path, an --out that is a file, or nothing usable
at all stops with exit code 2.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from cli.main import main

FAST = ["--frame-rates", "50", "--workers", "1"]


def run_prepare(capsys, out, *inputs):
    code = main(["prepare", "--instrument", "tone", *FAST, "--out", str(out), *map(str, inputs)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, [line for line in err.splitlines() if line.startswith("tonesweep:")]


def make_bad_files(folder, make_tone):
    """{case: path} of every per-file problem, in a folder."""
    folder.mkdir()
    files = {}
    files["not_audio"] = folder / "lyrics.wav"
    files["not_audio"].write_text("this is text with a .wav name\n" * 50)
    good = make_tone(folder / "tmp-source.wav", 6.0)
    data = good.read_bytes()
    files["truncated"] = folder / "cut.wav"
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["corrupt"] = folder / "garbled.wav"
    files["corrupt"].write_bytes(data[:20] + bytes(200))  # header cut inside the fmt chunk
    good.unlink()
    files["empty"] = folder / "empty.flac"
    files["empty"].write_bytes(b"")
    files["silent"] = folder / "silence.wav"
    sf.write(str(files["silent"]), np.zeros(16000 * 6), 16000)
    files["short"] = folder / "blip.wav"
    make_tone(files["short"], 2.5)
    files["unpitched"] = folder / "noise.wav"
    sf.write(str(files["unpitched"]), np.random.default_rng(0).uniform(-0.3, 0.3, 16000 * 6), 16000)
    return files


EXPECTED = {
    "not_audio": "not a readable audio file",
    "truncated": "truncated",
    "corrupt": "not a readable audio file",
    "empty": "empty file",
    "silent": "all silent",
    "short": "shorter than one 4 s example",
    "unpitched": "no pitched content",
}


def test_each_bad_file_is_skipped_with_one_warning_line(tmp_path, make_tone, capsys):
    files = make_bad_files(tmp_path / "mixed", make_tone)
    make_tone(tmp_path / "mixed" / "good.wav", 12.0)
    code, lines = run_prepare(capsys, tmp_path / "out", tmp_path / "mixed")
    assert code == 0
    assert len(lines) == len(files), lines
    for case, path in files.items():
        [line] = [line for line in lines if str(path) in line]
        assert line.startswith("tonesweep: warning: ") and EXPECTED[case] in line, (case, line)
        assert ";" in line  # "<file>: <what is wrong>; <what to do>"
    assert (tmp_path / "out" / "manifest.json").is_file()


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_a_single_bad_file_stops_with_one_error_line(tmp_path, make_tone, capsys, case):
    path = make_bad_files(tmp_path / "bad", make_tone)[case]
    code, lines = run_prepare(capsys, tmp_path / "out", path)
    assert code == 2
    assert lines[-1].startswith("tonesweep: error: ") and "none of the 1 input file(s) is usable" in lines[-1]
    assert any(str(path) in line and EXPECTED[case] in line for line in lines[:-1]), lines
    assert not (tmp_path / "out").exists()


def test_missing_path_stops(tmp_path, make_tone, capsys):
    good = make_tone(tmp_path / "good.wav", 12.0)
    code, lines = run_prepare(capsys, tmp_path / "out", good, tmp_path / "tkae-2.wav")
    missing = tmp_path / "tkae-2.wav"
    assert code == 2 and lines == [f"tonesweep: error: {missing}: no such file or folder; check the path"]


def test_output_that_is_a_file_stops(tmp_path, make_tone, capsys):
    good = make_tone(tmp_path / "good.wav", 12.0)
    target = tmp_path / "dataset"
    target.write_text("I am a file")
    code, lines = run_prepare(capsys, target, good)
    assert code == 2 and len(lines) == 1 and str(target) in lines[0] and "is an existing file" in lines[0]
    assert target.read_text() == "I am a file"


def test_output_that_is_an_unrelated_folder_is_not_replaced(tmp_path, make_tone, capsys):
    good = make_tone(tmp_path / "good.wav", 12.0)
    target = tmp_path / "precious"
    target.mkdir()
    (target / "thesis.tex").write_text("do not delete")
    code, lines = run_prepare(capsys, target, good)
    assert code == 2 and len(lines) == 1 and "not a tonesweep dataset" in lines[0]
    assert (target / "thesis.tex").read_text() == "do not delete"


def test_folder_without_audio_stops(tmp_path, capsys):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "readme.txt").write_text("hello")
    code, lines = run_prepare(capsys, tmp_path / "out", folder)
    assert code == 2 and len(lines) == 1 and str(folder) in lines[0] and "no audio files found" in lines[0]


@pytest.mark.parametrize("flags,named", [
    (["--frame-rates", "300"], "--frame-rates"), (["--frame-rates", "25"], "--frame-rates"),
    (["--hop-seconds", "0.01"], "--hop-seconds"), (["--validation-fraction", "1.5"], "--validation-fraction"),
    (["--workers", "0"], "--workers"),
])
def test_bad_flag_values_name_the_flag(tmp_path, make_tone, capsys, flags, named):
    good = make_tone(tmp_path / "good.wav", 12.0)
    code = main(["prepare", "--instrument", "tone", *flags, "--out", str(tmp_path / "o"), str(good)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and named in err and "Traceback" not in err
