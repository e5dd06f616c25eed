// Audio into the page: a file the browser decodes, the microphone, and an input level meter.

import { SAMPLE_RATE } from './features.mjs';

/** Any audio the browser decodes -> mono Float32Array at 16 kHz (the browser resamples). */
export async function decode(arrayBuffer, label) {
  const context = new OfflineAudioContext(1, 1, SAMPLE_RATE);
  let decoded;
  try {
    decoded = await context.decodeAudioData(arrayBuffer.slice(0));
  } catch {
    throw new Error(`${label}: not an audio file this browser can decode; pick a WAV, MP3, OGG or FLAC file`);
  }
  const mono = new Float32Array(decoded.length);
  for (let c = 0; c < decoded.numberOfChannels; c++) {
    const channel = decoded.getChannelData(c);
    for (let i = 0; i < mono.length; i++) mono[i] += channel[i] / decoded.numberOfChannels;
  }
  return mono;
}

/** The microphone as a MediaStream, unprocessed (the model hears the voice as it is); errors in words. */
export async function openMicrophone() {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new Error('this browser gives pages no microphone here (it needs https or localhost): pick a file instead');
  }
  try {
    return await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false } });
  } catch (err) {
    if (err.name === 'NotAllowedError' || err.name === 'SecurityError') {
      throw new Error('microphone permission denied: allow the microphone for this page (address bar), '
        + 'or pick a file instead');
    }
    if (err.name === 'NotFoundError') throw new Error('no microphone found: connect one, or pick a file instead');
    throw new Error(`the microphone did not open (${err.name}): pick a file instead`);
  }
}

/** The input level while recording: onLevel(RMS of the microphone in dBFS) every animation frame. Returns
 * stop(). */
export function inputMeter(stream, onLevel) {
  const context = new AudioContext();
  const analyser = context.createAnalyser();
  analyser.fftSize = 1024;
  context.createMediaStreamSource(stream).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  let frame = 0;
  const draw = () => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const x of samples) sum += x * x;
    onLevel(10 * Math.log10(sum / samples.length + 1e-12));
    frame = requestAnimationFrame(draw);
  };
  draw();
  return () => { cancelAnimationFrame(frame); context.close(); };
}
