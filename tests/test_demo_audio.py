"""demo-data: layout, determinism, ornaments, MIDI hygiene, and reuse of earlier renders."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import soundfile as sf

from trainers.data import demo
from common.errors import UserError


def test_layout_format_and_ground_truth(rendered_audio):
    for name in ("bansuri", "voice"):
        wav = rendered_audio / name / f"{name}-0.wav"
        info = sf.info(str(wav))
        assert (info.samplerate, info.channels) == (16000, 1)
        assert info.duration == pytest.approx(20.0, abs=0.01)
        times, f0 = demo.read_f0_csv(rendered_audio / name / f"{name}-0.f0.csv")
        assert len(times) == 20 * demo.TRUTH_RATE and np.allclose(np.diff(times), 1 / demo.TRUTH_RATE)
        sounding = f0[f0 > 0]
        voice = demo.INSTRUMENTS[name]
        lowest = 440 * 2 ** ((voice.tonic + voice.low - 69 - 1) / 12)  # -1: room for vibrato/glides
        highest = 440 * 2 ** ((voice.tonic + voice.high - 69 + 1) / 12)
        assert 0.5 < len(sounding) / len(f0) < 0.95 and sounding.min() > lowest and sounding.max() < highest
        audio, _ = sf.read(str(wav))
        assert 0.05 < np.max(np.abs(audio)) < 1.0


def test_takes_are_split_into_about_one_minute():
    assert demo.take_lengths(3) == [60.0, 60.0, 60.0]
    assert demo.take_lengths(20 / 60) == [pytest.approx(20.0)]
    assert len(demo.take_lengths(2.4)) == 2


def _compose(seed: int, name: str = "sarangi", seconds: float = 60.0):
    rng = np.random.default_rng([seed, 2, 0])
    return demo.compose_take(rng, demo.INSTRUMENTS[name], "yaman", seconds)


def test_composition_is_deterministic_per_seed():
    assert _compose(1) == _compose(1)
    assert _compose(1) != _compose(2)


def test_phrases_carry_the_ornaments():
    notes = _compose(4)
    strokes = demo.group_strokes(notes)
    assert sum(n.glide_in > 0 for n in notes) >= 5, "meend"
    assert sum(n.grace is not None for n in notes) >= 3, "kan"
    assert sum(n.vibrato is not None for n in notes) >= 5, "vibrato"
    assert len({n.velocity // 10 for n in notes}) >= 3, "dynamics"
    assert any(len(s.notes) > 1 for s in strokes), "glides keep the note sounding"
    for stroke in strokes:  # every glide stays inside the +-12 semitone bend range
        assert all(abs(n.pitch - stroke.key) <= demo.MAX_STROKE_SPAN for n in stroke.notes)
    for a, b in zip(strokes, strokes[1:]):  # one stroke at a time, on alternating channels
        assert a.end <= b.start + 1e-9 and a.channel != b.channel
    delayed = [n for n in notes if n.vibrato]
    note = delayed[0]
    delay, rate, _ = note.vibrato
    early, crest = note.start + 0.1, note.start + delay + 0.3 + 0.25 / rate  # a crest after the fade-in
    pitch = demo.stroke_pitch(demo.Stroke([note], note.pitch, 0), np.array([early, crest]))
    assert pitch[0] == note.pitch and abs(pitch[1] - note.pitch) > 0.05  # vibrato starts late


def test_midi_controls_are_spaced_and_set_the_bend_range():
    strokes = demo.group_strokes(_compose(5))
    midi = demo.build_midi(strokes, demo.INSTRUMENTS["sarangi"])
    assert [i.program for i in midi.instruments] == [110, 110]  # GM Fiddle (111, 1-based)
    for instrument in midi.instruments:
        numbers = [c.number for c in instrument.control_changes[:4]]
        assert numbers == [101, 100, 6, 38] and instrument.control_changes[2].value == 12
        bend_times = np.array([b.time for b in instrument.pitch_bends])
        assert np.all(np.diff(bend_times) >= demo.BEND_GRID - 1e-6)
        cc_times = np.array([c.time for c in instrument.control_changes if c.number == 11])
        assert np.all(np.diff(cc_times) >= 0.0099)
        on_times = {round(n.start, 4) for n in instrument.notes}
        assert not on_times & {round(t, 4) for t in bend_times}  # no bend shares a note-on's tick


def test_ground_truth_follows_the_bends():
    strokes = demo.group_strokes(_compose(6))
    glide = next(s for s in strokes if len(s.notes) > 1)
    times, f0 = demo.ground_truth_f0(strokes, 60.0)
    inside = (times >= glide.start) & (times < glide.end)
    midi = 69 + 12 * np.log2(f0[inside] / 440)
    assert midi.min() <= min(n.pitch for n in glide.notes) + 0.3
    assert midi.max() >= max(n.pitch for n in glide.notes) - 0.3
    assert np.all(f0[~np.any([(times >= s.start) & (times < s.end) for s in strokes], axis=0)] == 0)


def test_second_render_is_reused_and_changed_seed_rerenders(tmp_path, capsys):
    first = demo.render_demo(tmp_path, minutes=0.1, instruments=["shehnai"], seed=1)["shehnai"][0]
    stamp = first.stat().st_mtime_ns
    demo.render_demo(tmp_path, minutes=0.1, instruments=["shehnai"], seed=1, info=lambda line: print(line, file=sys.stderr))
    assert first.stat().st_mtime_ns == stamp and "up to date" in capsys.readouterr().err
    audio_1 = sf.read(str(first))[0]
    demo.render_demo(tmp_path, minutes=0.1, instruments=["shehnai"], seed=2)
    assert not np.array_equal(audio_1, sf.read(str(first))[0])


def test_unknown_instrument_and_bad_minutes_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="--instruments: unknown sitar"):
        demo.render_demo(tmp_path, minutes=1, instruments=["sitar"])
    with pytest.raises(UserError, match="--minutes"):
        demo.render_demo(tmp_path, minutes=0, instruments=["voice"])
