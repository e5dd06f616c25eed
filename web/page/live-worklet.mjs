// The live mode's audio thread: the microphone's samples go to the render worker as they come, and the
// instrument's blocks come back and play a fixed delay after the voice they were rendered from.
//
// Input and output run on the audio context's one clock (16 kHz, the models' rate): the quantum that
// reads input samples n..n+127 also plays output samples n..n+127, so a block rendered from the voice
// starting at input sample s plays from output sample s + delay, exactly, and the delay is the
// input-to-output latency inside the page (the browser adds its device buffers: AudioContext.baseLatency
// and outputLatency). A block that arrives after its first sample was due is late: what was due is lost
// (silence), and it is counted.
//
// Port messages in:  {type: 'connect', port (the worker's end)}  {type: 'stop'}
//           out:     {type: 'stats', position, blocks, late, minSlack (samples to spare, least so far), level (dBFS
//                    of the input), final (the last, answering stop)}
// Worker port in:    {start (input sample), audio (Float32Array)}   out: {at (input sample), samples}

const CAPACITY = 16000 * 8; // eight seconds of output ahead at most
const STATS_EVERY = 16000 / 4; // samples between stats messages
// The stream to the worker starts this long after the audio thread does: a device starting up runs its first
// quanta in a rush, and blocks rendered from them came late (every late block in headless Chromium was in the
// first 0.1 s, and with a quarter second of settling, in the 0.15 s after it).
const SETTLE = 16000 / 2;

class LiveIO extends AudioWorkletProcessor {
  constructor({ processorOptions }) {
    super();
    this.delay = processorOptions.delay;
    this.ring = new Float32Array(CAPACITY);
    this.position = 0;
    this.worker = null;
    this.stopped = false;
    this.stats = { blocks: 0, late: 0, minSlack: Infinity, lateAt: [] }; // lateAt: the first late blocks' input samples
    this.power = 0;
    this.port.onmessage = ({ data }) => {
      if (data.type === 'connect') {
        this.worker = data.port;
        this.worker.onmessage = ({ data: block }) => this.place(block);
      } else if (data.type === 'stop') {
        this.stopped = true;
        this.port.postMessage({ type: 'stats', final: true, position: this.position, ...this.stats, level: -Infinity });
      }
    };
  }

  /** A rendered block into the output ring at its input position plus the delay. */
  place({ start, audio }) {
    const slack = start + this.delay - this.position;
    this.stats.blocks += 1;
    this.stats.minSlack = Math.min(this.stats.minSlack, slack);
    if (slack < 0) {
      this.stats.late += 1;
      if (this.stats.lateAt.length < 20) this.stats.lateAt.push(start);
    }
    for (let i = Math.max(0, -slack); i < audio.length; i++) this.ring[(start + this.delay + i) % CAPACITY] = audio[i];
  }

  process(inputs, outputs) {
    const output = outputs[0];
    const n = output[0].length;
    const input = inputs[0]?.[0];
    const samples = new Float32Array(n);
    if (input) samples.set(input);
    for (let i = 0; i < n; i++) this.power += samples[i] * samples[i];
    if (!this.stopped && this.position >= SETTLE) this.worker?.postMessage({ at: this.position, samples }, [samples.buffer]);
    for (let i = 0; i < n; i++) {
      const slot = (this.position + i) % CAPACITY;
      for (const channel of output) channel[i] = this.ring[slot];
      this.ring[slot] = 0; // played: silence unless a block writes it again
    }
    this.position += n;
    if (this.position % STATS_EVERY < n) {
      this.port.postMessage({ type: 'stats', position: this.position, ...this.stats,
        level: 10 * Math.log10(this.power / STATS_EVERY + 1e-12) });
      this.power = 0;
    }
    return !this.stopped;
  }
}

registerProcessor('tonesweep-live', LiveIO);
