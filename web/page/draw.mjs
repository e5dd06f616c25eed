// The result's pictures: the sung pitch against what the instrument plays, and the rendered waveform.

/** input: {f0Hz, voiced} per frame as sung; fitted: {f0Hz} as played (octave-shifted): dots and a line, in notes. */
export function drawPitch(canvas, input, fitted) {
  const g = canvas.getContext('2d');
  const T = input.f0Hz.length;
  const midi = (hz) => 69 + 12 * Math.log2(hz / 440);
  const all = [];
  for (let t = 0; t < T; t++) if (input.voiced[t]) all.push(midi(input.f0Hz[t]), midi(fitted.f0Hz[t]));
  g.clearRect(0, 0, canvas.width, canvas.height);
  if (!all.length) return;
  const lo = Math.min(...all) - 2;
  const hi = Math.max(...all) + 2;
  const y = (m) => canvas.height * (1 - (m - lo) / (hi - lo));
  const x = (t) => (t / T) * canvas.width;
  g.fillStyle = '#888';
  for (let t = 0; t < T; t++) if (input.voiced[t]) g.fillRect(x(t), y(midi(input.f0Hz[t])), 2, 2);
  g.strokeStyle = '#c50';
  g.beginPath();
  for (let t = 0; t < T; t++) g[t ? 'lineTo' : 'moveTo'](x(t), y(midi(fitted.f0Hz[t])));
  g.stroke();
}

/** The waveform's envelope, one column per pixel, scaled to the canvas's height. */
export function drawWave(canvas, audio) {
  const g = canvas.getContext('2d');
  const mid = canvas.height / 2;
  const per = Math.max(1, Math.floor(audio.length / canvas.width));
  let peak = 1e-9;
  for (let i = 0; i < audio.length; i++) peak = Math.max(peak, Math.abs(audio[i]));
  const scale = mid / peak; // drawn to the full height; the WAV keeps the model's level
  g.clearRect(0, 0, canvas.width, canvas.height);
  g.fillStyle = '#258';
  for (let px = 0; px < canvas.width; px++) {
    let lo = 0;
    let hi = 0;
    for (let i = px * per; i < Math.min(audio.length, (px + 1) * per); i++) {
      lo = Math.min(lo, audio[i]);
      hi = Math.max(hi, audio[i]);
    }
    g.fillRect(px, mid - hi * scale, 1, Math.max(1, (hi - lo) * scale));
  }
}
