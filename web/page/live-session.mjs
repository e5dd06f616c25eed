// Live mode on the main thread: the microphone into the audio thread (live-worklet.mjs), which hands its
// samples to the render worker and plays the blocks it renders (live.mjs) a fixed delay after the voice.
// The delay comes from the model's layout (liveTiming); the worklet counts blocks that arrive late.

import { LIVE_REACH, SAMPLE_RATE } from './features.mjs';
import { liveLayout, liveTiming } from './live.mjs';

/**
 * Start playing the microphone (`stream`) as the loaded model (`card`). ask(message, progress, transfer)
 * sends a message to the render worker. onStats({level, late, blocks, minSlack}) is called four times a second.
 * Returns the running session: {block, delayMs, deviceMs, stop() -> the take (render-worker's liveTake)}.
 */
export async function startLive({ stream, card, ask, octaves, gainDb, onStats }) {
  const context = new AudioContext({ sampleRate: SAMPLE_RATE, latencyHint: 'interactive' });
  const { block, delay } = liveTiming(liveLayout(card), LIVE_REACH, (context.baseLatency || 0) * SAMPLE_RATE);
  try {
    await context.audioWorklet.addModule(new URL('./live-worklet.mjs', import.meta.url));
    const node = new AudioWorkletNode(context, 'tonesweep-live', { numberOfInputs: 1, numberOfOutputs: 1,
      outputChannelCount: [1], processorOptions: { delay } });
    const channel = new MessageChannel();
    node.port.postMessage({ type: 'connect', port: channel.port1 }, [channel.port1]);
    await ask({ type: 'live', port: channel.port2, card, octaves, block, gainDb }, null, [channel.port2]).answer;
    let finished;
    const final = new Promise((resolve) => { finished = resolve; });
    node.port.onmessage = ({ data }) => (data.final ? finished(data) : onStats(data));
    const source = context.createMediaStreamSource(stream);
    source.connect(node);
    node.connect(context.destination);
    await context.resume();
    return {
      block,
      delayMs: (1000 * delay) / SAMPLE_RATE,
      // what the browser adds for its own buffers (0 where it does not say)
      deviceMs: 1000 * ((context.baseLatency || 0) + (context.outputLatency || 0)),
      bufferMs: 1000 * (context.baseLatency || 0),
      async stop() {
        node.port.postMessage({ type: 'stop' });
        const stats = await final;
        source.disconnect();
        const take = await ask({ type: 'live-stop' }).answer;
        await context.close();
        return { ...take, late: stats.late, blocks: stats.blocks, minSlackMs: (1000 * stats.minSlack) / SAMPLE_RATE,
          lateAtS: stats.lateAt.map((sample) => sample / SAMPLE_RATE) };
      },
    };
  } catch (err) {
    await context.close();
    throw err;
  }
}
