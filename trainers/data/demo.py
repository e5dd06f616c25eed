"""`tonesweep demo-data`: realistic stand-in recordings rendered offline from a GM soundfont.

For each instrument, several takes of raga-like phrases are composed (seeded), written as MIDI
and rendered with fluidsynth, then given a take's input gain and a quiet room-noise floor.
Ornaments follow Hindustani practice: meend (a raised-cosine glide between notes, played as a
pitch bend on the still-sounding note), kan (a grace flick from the note above), delayed vibrato
on held notes, and dynamics (velocity per phrase, CC11 swells).

MIDI tricks that keep the rendering faithful to the ground truth (docs/engines.md#midi-tricks):
  * each stroke gets its own channel, alternating between two, so a bend never leaks into the
    previous note's release; pitch-bend range is set to +-12 semitones (RPN 0);
  * controller events sit on a 10 ms grid (bends) and a grid offset by 5 ms (CC11), so no two
    share a tick (pretty_midi re-sorts events that do); a stroke's first bend is sent 10 ms
    before its note-on.

Output: ``OUT/<instrument>/<instrument>-<k>.wav`` (16 kHz mono PCM16) and beside each
``<instrument>-<k>.f0.csv`` (``time_s,f0_hz`` at 250 Hz; 0 = no note sounding) — the pitch the MIDI
asks for, in MIDI time. fluidsynth's output lags the MIDI by ~20-28 ms.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.constants import SAMPLE_RATE
from trainers.data.audio import load_audio, write_wav
from common.bounds import POSITIVE
from common.errors import UserError
from common.files import scratch_dir, write_json_atomic
from common.paths import check_output_folder

SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/TimGM6mb.sf2")
RENDER_VERSION = 2  # bump when composition or rendering changes, so cached renders are redone
TRUTH_RATE = 250  # Hz, rows of the .f0.csv files
BEND_GRID = 0.010  # s between pitch-bend events
CC_GRID = 0.020  # s between CC11 events (offset by 5 ms from the bend grid)
BEND_RANGE = 12  # semitones for a full bend
MAX_STROKE_SPAN = 10  # semitones a stroke may glide away from its key (margin for vibrato)
TAKE_SECONDS = 60.0  # a take ("recording") is about this long


@dataclass(frozen=True)
class Voice:
    """How one instrument is played: GM program (1-based), Sa, range and ornament habits."""

    program: int
    tonic: int  # MIDI note of Sa
    low: int  # lowest note, semitones relative to Sa
    high: int
    glide_probability: float  # chance that a note is reached by meend instead of a new attack
    grace_probability: float  # chance that an attacked note starts with a kan from above
    vibrato_cents: tuple[float, float]
    tempo: float  # multiplies note durations (< 1: quicker)


INSTRUMENTS: dict[str, Voice] = {
    "bansuri": Voice(program=74, tonic=64, low=-5, high=17, glide_probability=0.3, grace_probability=0.35,
                     vibrato_cents=(12, 28), tempo=0.9),
    "shehnai": Voice(program=112, tonic=62, low=-5, high=14, glide_probability=0.45, grace_probability=0.3,
                     vibrato_cents=(18, 35), tempo=1.0),
    "sarangi": Voice(program=111, tonic=60, low=-7, high=17, glide_probability=0.55, grace_probability=0.2,
                     vibrato_cents=(15, 30), tempo=1.1),
    "voice": Voice(program=54, tonic=57, low=-5, high=12, glide_probability=0.5, grace_probability=0.15,
                   vibrato_cents=(20, 35), tempo=1.2),
}

# Scale degrees (semitones above Sa) and the notes phrases like to rest on.
RAGAS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "yaman": ((0, 2, 4, 6, 7, 9, 11), (0, 4, 7, 11)),
    "bhupali": ((0, 2, 4, 7, 9), (0, 4, 7, 9)),
    "bhairav": ((0, 1, 4, 5, 7, 8, 11), (0, 5, 7)),
    "kafi": ((0, 2, 3, 5, 7, 9, 10), (0, 3, 7)),
}


@dataclass
class Note:
    """One melodic note: [start, end) seconds, MIDI pitch, and how it is ornamented."""

    start: float
    end: float
    pitch: int
    velocity: int
    glide_in: float = 0.0  # seconds of meend from the previous note (0: attacked)
    grace: int | None = None  # pitch of a kan at the attack
    vibrato: tuple[float, float, float] | None = None  # (delay s, rate Hz, depth cents)


@dataclass
class Stroke:
    """One MIDI note: consecutive melodic notes joined by glides, played as bends of one key."""

    notes: list[Note]
    key: int
    channel: int

    @property
    def start(self) -> float:
        return self.notes[0].start

    @property
    def end(self) -> float:
        return self.notes[-1].end


# ----------------------------------------------------------------------------------------------
# composing


def raga_pitches(voice: Voice, degrees: tuple[int, ...]) -> list[int]:
    """All MIDI pitches of the raga inside the instrument's range, ascending."""
    return sorted(voice.tonic + 12 * octave + d for octave in (-1, 0, 1, 2) for d in degrees
                  if voice.low <= 12 * octave + d <= voice.high)


def compose_take(rng: np.random.Generator, voice: Voice, raga: str, seconds: float) -> list[Note]:
    """Phrases separated by rests until ``seconds`` (minus a short tail for the release)."""
    degrees, resting = RAGAS[raga]
    pitches = raga_pitches(voice, degrees)
    rest_pitches = [p for p in pitches if (p - voice.tonic) % 12 in resting]
    notes: list[Note] = []
    time = float(rng.uniform(0.2, 0.6))
    position = pitches.index(voice.tonic)
    while time < seconds - 2.0 or not notes:  # at least one phrase, however short the take
        if time >= seconds - 0.5:
            break
        phrase, position = compose_phrase(rng, voice, pitches, rest_pitches, position, time, seconds - 0.4)
        if not phrase:
            break
        notes.extend(phrase)
        time = phrase[-1].end + float(rng.uniform(0.35, 1.4))
    return notes


def compose_phrase(rng: np.random.Generator, voice: Voice, pitches: list[int], rest_pitches: list[int],
                   position: int, start: float, limit: float) -> tuple[list[Note], int]:
    """3-9 notes moving mostly stepwise, ending on a long resting note; returns (notes, last index)."""
    count = int(rng.integers(3, 10))
    dynamics = float(rng.uniform(55, 110))  # phrase loudness as a MIDI velocity
    notes, time = [], start
    for index in range(count):
        last = index == count - 1
        if last:  # land on the nearest resting note
            target = min(rest_pitches, key=lambda p: (abs(p - pitches[position]), p))
            position = pitches.index(target)
            duration = float(rng.uniform(1.2, 2.6))
        else:
            step = int(rng.choice([-2, -1, -1, 1, 1, 2, 0, 3, -3], p=[.08, .27, .1, .27, .1, .08, .04, .03, .03]))
            position = int(np.clip(position + step, 0, len(pitches) - 1))
            duration = float(rng.choice([0.22, 0.32, 0.45, 0.6, 0.9, 1.3], p=[.12, .22, .24, .2, .14, .08]))
        duration *= voice.tempo
        end = min(time + duration, limit)
        if end - time < 0.12:
            break
        notes.append(ornamented(rng, voice, pitches, position, time, end, dynamics, first=index == 0))
        gap = 0.0 if notes[-1].glide_in or rng.random() < 0.5 else float(rng.uniform(0.0, 0.04))
        time = end + gap
    # a glide into the next note needs contiguous time: drop glides after a gap
    for previous, note in zip(notes, notes[1:]):
        if note.start > previous.end:
            note.glide_in = 0.0
    return notes, position


def ornamented(rng: np.random.Generator, voice: Voice, pitches: list[int], position: int, start: float, end: float,
               dynamics: float, first: bool) -> Note:
    """A note with a glide or grace at its start and delayed vibrato when it is held long enough."""
    duration = end - start
    velocity = int(np.clip(dynamics + rng.normal(0, 6), 30, 120))
    note = Note(start, end, pitches[position], velocity)
    if not first and rng.random() < voice.glide_probability:
        note.glide_in = float(min(rng.uniform(0.08, 0.32), 0.6 * duration))
    elif rng.random() < voice.grace_probability and position + 1 < len(pitches) and duration > 0.25:
        note.grace = pitches[position + 1]
    if duration >= 0.7:
        delay = float(rng.uniform(0.25, 0.5))
        note.vibrato = (delay, float(rng.uniform(4.5, 6.5)), float(rng.uniform(*voice.vibrato_cents)))
    return note


def group_strokes(notes: list[Note]) -> list[Stroke]:
    """Join glided notes into strokes (one MIDI note each), alternating channels 0 and 1."""
    strokes: list[Stroke] = []
    for note in notes:
        current = strokes[-1] if strokes else None
        if (note.glide_in and current is not None and current.end == note.start
                and abs(note.pitch - current.key) <= MAX_STROKE_SPAN):
            current.notes.append(note)
        else:
            note.glide_in = 0.0
            strokes.append(Stroke([note], key=note.pitch, channel=len(strokes) % 2))
    return strokes


# ----------------------------------------------------------------------------------------------
# pitch and loudness curves


def stroke_pitch(stroke: Stroke, times: np.ndarray) -> np.ndarray:
    """Intended pitch (MIDI, float) of ``stroke`` at ``times`` (s, inside the stroke)."""
    out = np.empty(len(times))
    starts = np.array([n.start for n in stroke.notes])
    for i, t in enumerate(times):
        k = max(0, int(np.searchsorted(starts, t, side="right")) - 1)
        note = stroke.notes[k]
        since = t - note.start
        pitch = float(note.pitch)
        if note.glide_in and since < note.glide_in:
            previous = stroke.notes[k - 1].pitch
            pitch = previous + (note.pitch - previous) * _raised_cosine(since / note.glide_in)
        elif note.grace is not None and since < 0.085:
            # kan: ~55 ms on the upper note, then a 30 ms fall to the note itself
            pitch = note.grace - (note.grace - note.pitch) * _raised_cosine((since - 0.055) / 0.03)
        if note.vibrato is not None and since > note.vibrato[0]:
            delay, rate, depth = note.vibrato
            fade_in = min(1.0, (since - delay) / 0.3)
            pitch += fade_in * depth / 100 * math.sin(2 * math.pi * rate * (since - delay))
        out[i] = pitch
    return out


def _raised_cosine(u: float) -> float:
    u = min(1.0, max(0.0, u))
    return 0.5 - 0.5 * math.cos(math.pi * u)


def stroke_expression(stroke: Stroke, times: np.ndarray) -> np.ndarray:
    """CC11 (0-127) of ``stroke`` at ``times``: a swell inside every note, softer glides."""
    out = np.empty(len(times))
    starts = np.array([n.start for n in stroke.notes])
    for i, t in enumerate(times):
        note = stroke.notes[max(0, int(np.searchsorted(starts, t, side="right")) - 1)]
        u = (t - note.start) / max(1e-3, note.end - note.start)
        out[i] = 127 * (0.72 + 0.28 * math.sin(math.pi * min(1.0, max(0.0, u))))
    return np.clip(np.round(out), 0, 127)


def bend_units(semitones: np.ndarray) -> np.ndarray:
    """Pitch-bend values (-8192..8191) for offsets in semitones with a +-12 semitone range."""
    return np.clip(np.round(semitones / BEND_RANGE * 8192), -8192, 8191).astype(int)


def stroke_bends(stroke: Stroke) -> tuple[np.ndarray, np.ndarray]:
    """Bend grid of a stroke: (times s [K], values [K]); value k holds from time k until k+1."""
    times = stroke.start + BEND_GRID * np.arange(max(1, math.ceil((stroke.end - stroke.start) / BEND_GRID)))
    return times, bend_units(stroke_pitch(stroke, times) - stroke.key)


def ground_truth_f0(strokes: list[Stroke], seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """The f0 the MIDI asks for: (times s [T], f0 Hz [T]) at TRUTH_RATE; 0 where nothing sounds."""
    times = np.arange(round(seconds * TRUTH_RATE)) / TRUTH_RATE
    f0 = np.zeros(len(times))
    for stroke in strokes:
        grid_times, values = stroke_bends(stroke)
        inside = (times >= stroke.start) & (times < stroke.end)
        k = np.clip(((times[inside] - stroke.start) // BEND_GRID).astype(int), 0, len(values) - 1)
        midi = stroke.key + values[k] * BEND_RANGE / 8192
        f0[inside] = 440.0 * 2 ** ((midi - 69) / 12)
    return times, f0


# ----------------------------------------------------------------------------------------------
# MIDI and rendering


def build_midi(strokes: list[Stroke], voice: Voice):
    """A pretty_midi.PrettyMIDI with two channels of the voice's GM program."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    channels = [pretty_midi.Instrument(program=voice.program - 1, name=f"ch{c}") for c in (0, 1)]
    for instrument in channels:
        # RPN 0 (pitch-bend sensitivity) = 12 semitones, each message 10 ms apart
        for k, (number, value) in enumerate([(101, 0), (100, 0), (6, BEND_RANGE), (38, 0), (7, 110), (11, 127)]):
            instrument.control_changes.append(pretty_midi.ControlChange(number, value, 0.01 * k))
    for stroke in strokes:
        instrument = channels[stroke.channel]
        top = max(n.velocity for n in stroke.notes)
        instrument.notes.append(pretty_midi.Note(top, stroke.key, stroke.start, stroke.end))
        times, values = stroke_bends(stroke)
        times = times.copy()
        times[0] = stroke.start - BEND_GRID  # set the bend before the attack
        previous = None
        for time, value in zip(times, values):
            if value != previous:
                instrument.pitch_bends.append(pretty_midi.PitchBend(int(value), float(time)))
                previous = value
        cc_times = stroke.start + 0.005 + CC_GRID * np.arange(max(1, int((stroke.end - stroke.start) / CC_GRID)))
        previous = None
        for time, value in zip(cc_times, stroke_expression(stroke, cc_times)):
            if value != previous:
                instrument.control_changes.append(pretty_midi.ControlChange(11, int(value), float(time)))
                previous = value
    midi.instruments.extend(channels)
    return midi


def find_soundfont(requested: str | None) -> Path:
    """The soundfont to use: ``requested``, else FluidR3_GM, else TimGM6mb."""
    if requested:
        path = Path(requested)
        if not path.is_file():
            raise UserError(f"{path}: --soundfont file not found; pass an existing .sf2 file")
        return path
    for candidate in SOUNDFONTS:
        if Path(candidate).is_file():
            return Path(candidate)
    raise UserError(
        f"{SOUNDFONTS[0]}: no General-MIDI soundfont installed; "
        "`apt-get install fluid-soundfont-gm` or pass --soundfont FILE.sf2"
    )


def render(midi, soundfont: Path, seconds: float) -> np.ndarray:
    """Render ``midi`` with fluidsynth (no reverb/chorus) to mono float32 [seconds * 16000]."""
    fluidsynth = shutil.which("fluidsynth")
    if fluidsynth is None:
        raise UserError("fluidsynth: not installed; `apt-get install fluidsynth` (or run `make install`)")
    with scratch_dir("tonesweep-render-") as folder:
        mid, wav = Path(folder) / "take.mid", Path(folder) / "take.wav"
        midi.write(str(mid))
        command = [fluidsynth, "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.7", "-r", str(SAMPLE_RATE),
                   "-F", str(wav), str(soundfont), str(mid)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0 or not wav.is_file():
            raise UserError(f"{soundfont}: fluidsynth failed ({result.stderr.strip()[:200]}); try another --soundfont")
        audio = load_audio(wav)
    total = round(seconds * SAMPLE_RATE)
    return np.pad(audio, (0, max(0, total - len(audio))))[:total]


def as_recorded(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Make a clean render look like a take: a random input gain (-6..+2 dB) and a quiet room
    noise floor (low-passed white noise around -66 dBFS), peaks kept 1 dB below full scale.

    Args/returns: float32 [n].
    """
    from scipy.signal import lfilter

    gain = 10 ** (rng.uniform(-6.0, 2.0) / 20)
    noise = lfilter([0.15], [1.0, -0.85], rng.normal(0.0, 1.0, len(audio)))  # one-pole low-pass
    noise *= 10 ** (-66 / 20) / max(float(np.std(noise)), 1e-12)
    take = audio * gain + noise
    peak = float(np.max(np.abs(take)))
    return (take * (0.89 / peak) if peak > 0.89 else take).astype(np.float32)


def write_f0_csv(path: Path, times: np.ndarray, f0: np.ndarray) -> None:
    """``time_s,f0_hz`` rows; 0 Hz = no note sounding."""
    lines = ["time_s,f0_hz"] + [f"{t:.3f},{f:.3f}" for t, f in zip(times, f0)]
    path.write_text("\n".join(lines) + "\n")


def read_f0_csv(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(times s [T], f0 Hz [T]) from a demo .f0.csv file."""
    data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    return data[:, 0], data[:, 1]


# ----------------------------------------------------------------------------------------------
# takes and the command


def take_lengths(minutes: float) -> list[float]:
    """Split ``minutes`` of audio into takes of about TAKE_SECONDS (at least one take)."""
    total = minutes * 60.0
    count = max(1, round(total / TAKE_SECONDS))
    return [total / count] * count


def render_take(name: str, take: int, seconds: float, seed: int, soundfont: Path, folder: Path) -> Path:
    """Compose, render and write take ``take`` of instrument ``name``; returns the WAV path."""
    voice = INSTRUMENTS[name]
    rng = np.random.default_rng([seed, sorted(INSTRUMENTS).index(name), take])
    raga = str(rng.choice(sorted(RAGAS)))
    strokes = group_strokes(compose_take(rng, voice, raga, seconds))
    audio = as_recorded(render(build_midi(strokes, voice), soundfont, seconds), rng)
    times, f0 = ground_truth_f0(strokes, seconds)
    wav = folder / f"{name}-{take}.wav"
    partial = folder / f".{name}-{take}.partial.wav"
    write_wav(partial, audio)
    write_f0_csv(folder / f"{name}-{take}.f0.csv", times, f0)
    os.replace(partial, wav)
    return wav


def render_instrument(name: str, out_dir: Path, minutes: float, seed: int, soundfont: Path) -> tuple[list[Path], bool]:
    """All takes of one instrument into ``out_dir/name``; reuses them when already rendered.

    Returns (wav paths, reused?). A ``render.json`` written last records what was rendered and the
    files it wrote; a re-render removes only those files, and never overwrites a file it did not write.
    """
    folder = out_dir / name
    lengths = take_lengths(minutes)
    recipe = {"version": RENDER_VERSION, "instrument": name, "seed": seed, "take_seconds": lengths,
              "soundfont": str(soundfont.resolve()), "soundfont_bytes": soundfont.stat().st_size}
    wavs = [folder / f"{name}-{k}.wav" for k in range(len(lengths))]
    stamp = folder / "render.json"
    previous = _read_stamp(stamp)
    if previous.get("recipe") == recipe and all(w.is_file() for w in wavs):
        return wavs, True
    ours = set(previous.get("files", []))
    files = [f"{name}-{k}{ext}" for k in range(len(lengths)) for ext in (".wav", ".f0.csv")]
    clash = [f for f in files if (folder / f).exists() and f not in ours]
    if clash:
        raise UserError(f"{folder / clash[0]}: exists and was not rendered by demo-data; choose another --out")
    folder.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    for stale in sorted(ours - set(files)):  # a previous, longer render had more takes
        if "/" not in stale and not stale.startswith("."):
            (folder / stale).unlink(missing_ok=True)
    for take, seconds in enumerate(lengths):
        render_take(name, take, seconds, seed, soundfont, folder)
    write_json_atomic(stamp, {"recipe": recipe, "files": files})
    return wavs, False


def _read_stamp(stamp: Path) -> dict:
    """The previous render's stamp ({"recipe", "files"}); {} when there is none (or an unreadable one)."""
    try:
        record = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return {}
    if isinstance(record, dict) and "take_seconds" in record and "instrument" in record:  # stamp of render version 2
        name, takes = record["instrument"], len(record["take_seconds"])
        record = {"recipe": record, "files": [f"{name}-{k}{ext}" for k in range(takes) for ext in (".wav", ".f0.csv")]}
    return record if isinstance(record, dict) and "recipe" in record else {}


def render_demo(out_dir: str | os.PathLike, minutes: float, instruments: list[str], seed: int = 0,
                soundfont: str | None = None, info: Callable[[str], None] | None = None) -> dict[str, list[Path]]:
    """Render every instrument; returns {instrument: [wav paths]}. ``info`` gets one line per instrument."""
    unknown = [name for name in instruments if name not in INSTRUMENTS]
    if unknown:
        raise UserError(f"--instruments: unknown {', '.join(unknown)}; choose from {', '.join(sorted(INSTRUMENTS))}")
    POSITIVE.check(minutes, "--minutes")
    out = check_output_folder(out_dir, "--out")
    font = find_soundfont(soundfont)
    rendered = {}
    for name in instruments:
        wavs, reused = render_instrument(name, out, minutes, seed, font)
        rendered[name] = wavs
        verb = "up to date" if reused else "rendered"
        if info is not None:
            info(f"{name}: {verb} {len(wavs)} take(s), {minutes:g} min, in {out / name}")
    return rendered
