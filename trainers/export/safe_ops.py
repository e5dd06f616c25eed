"""Export-safe DSP: ddsp's Harmonic, FilteredNoise and Reverb, and Keras' GRU, rewritten so that
the TF.js converter accepts them and every TF.js backend (cpu, wasm, webgl) runs them fast.

Each function documents the ddsp/Keras op it replaces; docs/export-notes.md lists the
reasons (no Roll/Complex/FFT kernels in wasm, negative strides break tfjs-cpu, grappler folds
fixed-shape zeros into giant constants, Keras RNN loops break TF.js' control flow).

Rules kept everywhere here: batch may be any size unless stated; no ``tf.zeros``/``zeros_like`` of
audio-sized shapes (grappler folds them into weight shards); no negative strides; no FFTs.
Shapes: B batch, T frames, H hop (samples per frame), K harmonics, N noise bands, S samples.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from trainers.ddsp_compat import ddsp

TWO_PI = 2.0 * np.pi


# ---------------------------------------------------------------- controls (per frame)

def exp_sigmoid(x: tf.Tensor) -> tf.Tensor:
    """ddsp.core.exp_sigmoid with its defaults: 2 * sigmoid(x) ** ln(10) + 1e-7 (same ops)."""
    return 2.0 * tf.nn.sigmoid(x) ** tf.math.log(10.0) + 1e-7


def harmonic_controls(amplitudes_raw: tf.Tensor, harmonics_raw: tf.Tensor, f0_hz: tf.Tensor,
                      sample_rate: int) -> tuple[tf.Tensor, tf.Tensor]:
    """ddsp.synths.Harmonic.get_controls without ``tf.zeros_like`` (it is folded to a constant).

    Args: amplitudes_raw [B,T,1], harmonics_raw [B,T,K], f0_hz [B,T,1] (raw decoder outputs).
    Returns: amplitudes [B,T,1] > 0, harmonic_distribution [B,T,K] summing to 1 below Nyquist.
    """
    amplitudes = exp_sigmoid(amplitudes_raw)
    distribution = exp_sigmoid(harmonics_raw)
    n_harmonics = int(harmonics_raw.shape[-1])
    ratios = tf.linspace(1.0, float(n_harmonics), n_harmonics)[tf.newaxis, tf.newaxis, :]
    below_nyquist = tf.cast(f0_hz * ratios < sample_rate / 2.0, tf.float32)
    distribution = distribution * below_nyquist
    total = tf.reduce_sum(distribution, axis=-1, keepdims=True)
    distribution = distribution / tf.where(total == 0.0, 1e-7, total)  # ddsp.core.safe_divide
    return amplitudes, distribution


def noise_controls(noise_raw: tf.Tensor, initial_bias: float = -5.0) -> tf.Tensor:
    """ddsp.synths.FilteredNoise.get_controls: magnitudes [B,T,N] = exp_sigmoid(raw + bias)."""
    return exp_sigmoid(noise_raw + initial_bias)


# ---------------------------------------------------------------- frame -> sample upsampling

def _interpolate_frames(frames: tf.Tensor, fall: np.ndarray, rise: np.ndarray) -> tf.Tensor:
    """out[j*H + r] = frames[j] * fall[r] + frames[j+1] * rise[r].

    Args: frames [B, T+1, C] (the last frame is only interpolated towards); fall, rise [H].
    Returns: [B, T*H, C].
    """
    batch, n_frames, channels = frames.shape
    hop = len(fall)
    this = frames[:, :-1, tf.newaxis, :]  # [B,T,1,C]
    nxt = frames[:, 1:, tf.newaxis, :]
    fall = tf.constant(fall, tf.float32)[tf.newaxis, tf.newaxis, :, tf.newaxis]
    rise = tf.constant(rise, tf.float32)[tf.newaxis, tf.newaxis, :, tf.newaxis]
    out = this * fall + nxt * rise  # [B,T,H,C]
    return tf.reshape(out, [-1 if batch is None else batch, (n_frames - 1) * hop, channels])


def upsample_window(frames: tf.Tensor, hop: int) -> tf.Tensor:
    """ddsp.core.upsample_with_windows as a two-frame Hann crossfade (no overlap_and_add).

    Hann windows of 2*H at hop H sum to one, so each output sample mixes exactly two frames:
    the falling half of frame j's window and the rising half of frame j+1's.
    Args: frames [B, T+1, C] (ddsp appends a copy of the last frame; callers pass the real next
    frame, or that copy). Returns [B, T*H, C].
    """
    with tf.init_scope():  # eager even while tracing: the exact float32 window ddsp uses
        window = tf.signal.hann_window(2 * hop).numpy()
    return _interpolate_frames(frames, fall=window[hop:], rise=window[:hop])


def upsample_linear(frames: tf.Tensor, hop: int) -> tf.Tensor:
    """ddsp.core.resample(method='linear'): tf.compat.v1.image.resize, align_corners=False.

    That resize maps output sample n to source position p = n * fl32(1/H) and returns
    x[floor p] + (x[floor p + 1] - x[floor p]) * (p - floor p). The same float32 arithmetic is
    done here, so the result is bit-identical; this matters because a 1e-5 error in the
    interpolated frequency accumulates in the phase (78 dB instead of 130 dB at 50 Hz frames).
    When 1/H is not exact, floor(p) can fall one frame short at a frame boundary (p = j - eps);
    those samples use frames j-1, j like TF does.
    Args: frames [B, T+1, C]. Returns [B, T*H, C].
    """
    batch, n_frames, channels = frames.shape
    n_out = n_frames - 1
    scale = np.float32(1.0) / np.float32(hop)
    this = frames[:, :-1, tf.newaxis, :]  # [B,T,1,C]
    nxt = frames[:, 1:, tf.newaxis, :]
    offset = np.arange(hop, dtype=np.float32)[None, :]  # [1,H]
    if float(scale) * hop == 1.0:  # 1/H exact (H = 64): p = j + r/H exactly, lerp depends on r only
        lerp = tf.constant(offset * scale)[tf.newaxis, :, :, tf.newaxis]  # [1,1,H,1]
        out = this + (nxt - this) * lerp
    else:
        frame_start = tf.constant(np.arange(n_out, dtype=np.float32)[:, None] * np.float32(hop))  # [T,1]
        # p needs a [T,H] tensor. Built from constants alone, grappler folds it into the weights
        # (it even reassociates c1 + (zero + c2)), so the frame offsets pass through a maximum
        # with a negative runtime value: an identity grappler cannot see through.
        below_zero = -1.0 - tf.abs(tf.reduce_sum(frames[:1, :1, :1]))
        position = (tf.maximum(frame_start, below_zero) + tf.constant(offset)) * scale  # [T,H]
        lower = tf.floor(position)
        lerp = (position - lower)[tf.newaxis, :, :, tf.newaxis]
        out = this + (nxt - this) * lerp
        # floor(p) can fall one frame short at a frame boundary (p = j - eps): TF then
        # interpolates frames j-1 and j.
        prev = tf.concat([frames[:, :1], frames[:, :-2]], axis=1)[:, :, tf.newaxis, :]
        short = (lower < tf.constant(np.arange(n_out, dtype=np.float32)[:, None]))[tf.newaxis, :, :, tf.newaxis]
        out = tf.where(short, prev + (this - prev) * lerp, out)
    return tf.reshape(out, [-1 if batch is None else batch, n_out * hop, channels])


# ---------------------------------------------------------------- harmonic synthesizer

def harmonic_audio(f0_hz: tf.Tensor, amplitudes: tf.Tensor, distribution: tf.Tensor, hop: int,
                   sample_rate: int, initial_phase: tf.Tensor | None = None
                   ) -> tuple[tf.Tensor, tf.Tensor]:
    """ddsp.core.harmonic_synthesis (window amplitudes, angular cumsum) with a phase carry.

    Args:
      f0_hz [B,T+1,1], amplitudes [B,T+1,1], distribution [B,T+1,K]: controls for T frames plus
        the frame after them (interpolation target).
      initial_phase [B,K]: phase (radians) of each harmonic before the first sample; zeros give
        ddsp's output exactly.
    Returns: audio [B, T*H], final_phase [B,K] wrapped to [0, 2*pi) (pass to the next chunk).
    """
    n_harmonics = int(distribution.shape[-1])
    ratios = tf.linspace(1.0, float(n_harmonics), n_harmonics)[tf.newaxis, tf.newaxis, :]
    frequencies = upsample_linear(f0_hz * ratios, hop)  # [B,S,K] Hz
    envelopes = upsample_window(amplitudes * distribution, hop)  # [B,S,K]
    # ddsp.core.oscillator_bank: zero amplitude at/above Nyquist (as a mask, not zeros_like).
    envelopes = envelopes * tf.cast(frequencies < sample_rate / 2.0, tf.float32)
    omegas = frequencies * TWO_PI / float(sample_rate)
    # Angular cumsum keeps float32 phase accurate over long chunks (plain cumsum drifts after ~10 s)
    # and its wrapped values survive WebGL's float16 textures.
    phases = ddsp.core.angular_cumsum(omegas)
    if initial_phase is not None:
        phases = phases + initial_phase[:, tf.newaxis, :]
    audio = tf.reduce_sum(envelopes * tf.sin(phases), axis=-1)
    final_phase = tf.math.floormod(phases[:, -1, :], TWO_PI)
    return audio, final_phase


# ---------------------------------------------------------------- filtered noise

def impulse_response_factors(n_bands: int, window_size: int = 257
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Factors of ddsp's filter design: M[k, j] = row_scale[k] * cos(2 pi (k * index[j] mod L) / L) * gain[j].

    ddsp.core.frequency_impulse_response = irfft(magnitudes) -> zero-phase Hann window ->
    fftshift. All three are linear: irfft of real magnitudes is a cosine matrix with row scale
    1, 2, ..., 2, 1 (over L = 2(N-1)); the window scales columns; the causal trim/fftshift and the
    reversal (the FIR runs as a correlation) pick columns. Returns (row_scale [N], index [J],
    gain [J], L) in float64, index integer-valued; M is [N, J] (J = FIR length).
    """
    ir_size = 2 * (n_bands - 1)
    row_scale = np.full(n_bands, 2.0)  # irfft of a Hermitian spectrum, real magnitudes only
    row_scale[0] = 1.0
    row_scale[-1] = 1.0
    if window_size <= 0 or window_size > ir_size:
        window_size = ir_size
    # tf.signal.hann_window(periodic=True) is only periodic for even lengths; odd ones (257 by
    # default) come out symmetric, i.e. divided by N - 1.
    period = window_size if window_size % 2 == 0 else window_size - 1
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(window_size) / period)
    half = (window_size + 1) // 2
    padding = ir_size - window_size
    zero_phase_window = np.concatenate([hann[half:], np.zeros(padding), hann[:half]])
    n = np.arange(ir_size)
    if padding > 0:  # causal form, trimmed to the window (apply_window_to_impulse_response)
        first = (ir_size - (half - 1)) + 1
        columns = np.concatenate([n[first:], n[:half + 1]])
    else:  # fftshift
        columns = np.concatenate([n[ir_size // 2:], n[:ir_size // 2]])
    columns = columns[::-1]
    return row_scale, columns.astype(np.float64), zero_phase_window[columns] / ir_size, ir_size


def impulse_response_matrix(n_bands: int, window_size: int = 257, dtype=np.float32) -> np.ndarray:
    """[N, L] matrix M with magnitudes @ M == REVERSED causal FIR of ddsp's filter design
    (float64 from impulse_response_factors, then dtype). The exported graph builds it in-graph
    (impulse_response_graph); this is the reference."""
    row_scale, index, gain, ir_size = impulse_response_factors(n_bands, window_size)
    k = np.arange(n_bands)[:, None]
    cosines = np.cos(2.0 * np.pi * ((k * index[None, :].astype(np.int64)) % ir_size) / ir_size)
    return (row_scale[:, None] * cosines * gain[None, :]).astype(dtype).copy()


def runtime_floor(t: tf.Tensor) -> tf.Tensor:
    """A scalar < -1 computed from the runtime value of t (for tf.maximum(constant, floor)).

    Grappler constant-folds anything built from constants alone into the weight shards (and
    reassociates c1 + (zero + c2)); maximum with a negative runtime value is an identity it
    cannot see through, so the constant stays small and the large tensor is built at run time.
    """
    return -1.0 - tf.abs(tf.reduce_sum(t))  # a whole-tensor Sum: no Reshape/StridedSlice nodes


def impulse_response_graph(n_bands: int, window_size: int, floor: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """The cosine core of impulse_response_matrix built in-graph, and its row/column scales.

    Shipping M as a constant costs 4*N*J bytes (33 KB at 65 bands, most of a small model's
    weight shard); here only k, index, row_scale and gain ship (4*(2N+2J) bytes). k*index is
    an exact integer in float32 (< 2**24), reduced mod L exactly, so cos sees angles in [0, 2 pi).
    Args: floor from runtime_floor (keeps grappler from folding the [N, J] result).
    Returns: cosines [N, J], row_scale [N], gain [J] (float32): M = row_scale[:, None] * cosines * gain.
    """
    row_scale, index, gain, ir_size = impulse_response_factors(n_bands, window_size)
    assert n_bands * ir_size < 2**24, "k * index must be exact in float32"
    k = tf.maximum(tf.constant(np.arange(n_bands, dtype=np.float32)[:, None]), floor)  # [N,1], runtime
    phase = tf.math.floormod(k * tf.constant(index.astype(np.float32)[None, :]), float(ir_size))
    cosines = tf.cos(phase * np.float32(2.0 * np.pi / ir_size))
    return cosines, tf.constant(row_scale.astype(np.float32)), tf.constant(gain.astype(np.float32))


def noise_fir_delay(n_bands: int, window_size: int = 257) -> int:
    """Samples ddsp trims from the front of each frame's convolution ('same', compensated)."""
    fir_len = impulse_response_matrix(n_bands, window_size).shape[1]
    return (fir_len - 1) // 2 - 1


def filter_frames(noise: tf.Tensor, magnitudes: tf.Tensor, hop: int,
                  window_size: int = 257) -> tf.Tensor:
    """Each frame of noise convolved with its own FIR; frames not yet overlap-added.

    Replaces ddsp.core.fft_convolve's rfft/irfft (no Complex kernels in wasm) with one depthwise
    convolution whose channels are the (batch, frame) pairs.
    Args: noise [B, T*H], magnitudes [B,T,N]. Returns [B, T, H+L-1] full convolutions.
    """
    batch, n_frames, n_bands = magnitudes.shape
    cosines, row_scale, gain = impulse_response_graph(n_bands, window_size, runtime_floor(noise))
    fir_reversed = tf.matmul(magnitudes * row_scale, cosines) * gain
    fir_len = int(fir_reversed.shape[-1])
    channels = batch * n_frames
    frames = tf.reshape(noise, [1, 1, channels, hop])  # [1,1,C,H]
    frames = tf.transpose(frames, [0, 1, 3, 2])  # [1,1,H,C]
    frames = tf.pad(frames, [[0, 0], [0, 0], [fir_len - 1, fir_len - 1], [0, 0]])
    kernel = tf.reshape(tf.transpose(tf.reshape(fir_reversed, [channels, fir_len])), [1, fir_len, channels, 1])
    convolved = tf.nn.depthwise_conv2d(frames, kernel, strides=[1, 1, 1, 1], padding="VALID")
    convolved = tf.transpose(tf.reshape(convolved, [hop + fir_len - 1, channels]))  # [C, H+L-1]
    return tf.reshape(convolved, [batch, n_frames, hop + fir_len - 1])


def overlap_add(segments: tf.Tensor, hop: int) -> tf.Tensor:
    """tf.signal.overlap_and_add for segments longer than the hop, as q padded slices.

    Args: segments [B, T, M]. Returns [B, (T + q - 1) * H] with q = ceil(M / H); segment t
    starts at sample t*H.
    """
    batch, n_frames, length = segments.shape
    q = -(-length // hop)
    segments = tf.pad(segments, [[0, 0], [0, 0], [0, q * hop - length]])
    blocks = tf.reshape(segments, [batch, n_frames, q, hop])
    total = None
    # one Unpack instead of q StridedSlices (each costs ~1.4 KB of model.json)
    for j, block in enumerate(tf.unstack(blocks, axis=2)):  # block j of frame t lands in output block t + j
        shifted = tf.pad(block, [[0, 0], [j, q - 1 - j], [0, 0]])
        total = shifted if total is None else total + shifted
    return tf.reshape(total, [batch, (n_frames + q - 1) * hop])


def filtered_noise(noise: tf.Tensor, magnitudes: tf.Tensor, hop: int,
                   window_size: int = 257) -> tf.Tensor:
    """ddsp.core.frequency_filter(noise, magnitudes, window_size) with padding 'same'.

    Args: noise [B, T*H] (uniform in [-1, 1) for FilteredNoise), magnitudes [B,T,N].
    Returns: [B, T*H].
    """
    n_frames = int(magnitudes.shape[1])
    full = overlap_add(filter_frames(noise, magnitudes, hop, window_size), hop)
    delay = noise_fir_delay(int(magnitudes.shape[-1]), window_size)
    return full[:, delay:delay + n_frames * hop]


# ---------------------------------------------------------------- reverb

def reverb_kernel(impulse_response: np.ndarray) -> np.ndarray:
    """ddsp.effects.Reverb's IR [L] as the conv2d filter reverb_wet takes: [1, L, 1, 1].

    The dry tap (sample 0) is masked as ddsp does, and the taps are reversed (conv2d correlates).
    Kept as one variable in exactly this form: any op applied to a weight inside the graph is
    constant-folded by the converter into an unnamed constant that weight quantization misses.
    """
    masked = np.asarray(impulse_response, np.float32).copy()
    masked[0] = 0.0
    return masked[::-1].reshape(1, -1, 1, 1).copy()


def reverb_wet(audio: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """Causal FIR of ddsp.effects.Reverb, full length, as one conv2d.

    Args: audio [B,S], kernel [1,L,1,1] from reverb_kernel. Returns wet [B, S+L-1]; ddsp keeps
    the first S samples and adds the dry signal.
    """
    length = int(kernel.shape[1])
    padded = tf.expand_dims(tf.expand_dims(tf.pad(audio, [[0, 0], [length - 1, length - 1]]), 1), 3)
    return tf.squeeze(tf.nn.conv2d(padded, kernel, strides=1, padding="VALID"), [1, 3])


# ---------------------------------------------------------------- GRU

# A GRU over this few steps (a live graph's window: js/live.mjs) is unrolled: TF.js runs a while loop in
# executeAsync, step by step, at several times the cost of the same steps as a plain graph (execute()).
UNROLL_STEPS = 8


def _gru_cell(x, h, recurrent_kernel, recurrent_bias, units):
    """One Keras GRU step (reset_after): x [..., 3U] the input's projection plus its bias, h [..., U]."""
    inner = tf.matmul(h, recurrent_kernel) + recurrent_bias
    z = tf.sigmoid(x[..., :units] + inner[..., :units])
    r = tf.sigmoid(x[..., units:2 * units] + inner[..., units:2 * units])
    candidate = tf.tanh(x[..., 2 * units:] + r * inner[..., 2 * units:])
    return z * h + (1.0 - z) * candidate


def _gru_unrolled(inputs, kernel, recurrent_kernel, bias, initial_state, keep):
    """gru_sequence as straight-line ops, on [1,1,.] tensors: a 2-D matmul plus a bias becomes the
    converter's _FusedMatMul, which TF.js fails to run with a computed bias. The two bias rows are taken
    by a matmul with [1, 0] and [0, 1] made from the state (exact: one product by 1, one by 0), not by
    slicing: grappler would fold a slice of a weight into a new constant that weight quantization misses."""
    units = int(recurrent_kernel.shape[0])
    h = initial_state[tf.newaxis]  # [1,1,U]
    zero = h[..., :1] * 0.0  # [1,1,1], not a constant
    input_bias = tf.matmul(tf.concat([zero + 1.0, zero], axis=-1), bias)  # [1,1,3U] = bias[0]
    recurrent_bias = tf.matmul(tf.concat([zero, zero + 1.0], axis=-1), bias)  # bias[1]
    projected = tf.matmul(inputs, kernel)  # [1,T,3U]
    kept, outputs = h, []
    for t in range(int(inputs.shape[1])):
        h = _gru_cell(projected[:, t:t + 1] + input_bias, h, recurrent_kernel, recurrent_bias, units)
        outputs.append(h)
        if t + 1 == keep:
            kept = h
    return tf.concat(outputs, axis=1), kept[0]


def gru_sequence(inputs: tf.Tensor, kernel: tf.Tensor, recurrent_kernel: tf.Tensor,
                 bias: tf.Tensor, initial_state: tf.Tensor, keep_state_at: int | None = None
                 ) -> tuple[tf.Tensor, tf.Tensor]:
    """Keras 3 GRU (reset_after=True, tanh/sigmoid, return_sequences) as one tf.while_loop.

    TF.js cannot run Keras' RNN loop (TensorList ops); this loop carries only tensors and writes
    step t's output with tensor_scatter_nd_update, which converts to a single StatelessWhile.
    Args:
      inputs [1,T,D] (batch 1: the loop indexes time directly), kernel [D,3U],
      recurrent_kernel [U,3U], bias [2,3U] (input bias, recurrent bias), initial_state [1,U].
      keep_state_at: also return the state after this many steps (chunking with lookahead
        frames); default T.
    Returns: outputs [1,T,U], state [1,U].
    """
    n_steps = int(inputs.shape[1])
    units = int(recurrent_kernel.shape[0])
    keep = n_steps if keep_state_at is None else keep_state_at
    if n_steps <= UNROLL_STEPS:
        return _gru_unrolled(inputs, kernel, recurrent_kernel, bias, initial_state, keep)
    projected = tf.matmul(inputs[0], kernel)  # [T,3U]: inputs through all gates at once
    # Buffer for the outputs. Derived from an input (times zero) so grappler cannot fold it into
    # a [T,U] constant in the weights.
    outputs0 = projected[:, :units] * 0.0

    # The weights travel as loop variables rather than captures: captured tensors get anonymous
    # names ("unknown_9") and slices of a weight are folded into new constants, and either way
    # the converter's '*ReadVariableOp*' quantization pattern would miss them.
    def step(t, h, kept, outputs, recurrent_kernel, bias):
        h_new = _gru_cell(projected[t][tf.newaxis, :] + bias[0], h, recurrent_kernel, bias[1], units)
        outputs = tf.tensor_scatter_nd_update(outputs, tf.reshape(t, [1, 1]), h_new)
        kept = tf.where(tf.equal(t + 1, keep), h_new, kept)
        return t + 1, h_new, kept, outputs, recurrent_kernel, bias

    loop = tf.while_loop(
        lambda t, *_: t < n_steps, step,
        (tf.constant(0), initial_state, initial_state, outputs0, recurrent_kernel, bias),
        maximum_iterations=n_steps)
    outputs, kept = loop[3], loop[2]
    return outputs[tf.newaxis], kept
