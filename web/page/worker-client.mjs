// The page's side of the render worker (render-worker.mjs): requests answered by id, progress on the way,
// and a crash of the worker rejecting whatever still waits (the next request starts a new worker).

export class RenderWorker {
  /** onLiveError(message): live rendering stopped in the worker (its request was answered long before). */
  constructor({ onLiveError }) {
    this.onLiveError = onLiveError;
    this.worker = null;
    this.lastId = 0;
    this.pending = new Map(); // message id -> {resolve, reject, progress}
  }

  /** Send a request (transferring `transfer`); returns {id, answer: Promise of its reply}. progress(done, total)
   * is called with the worker's progress messages for it. */
  ask(message, progress = null, transfer = []) {
    const id = ++this.lastId;
    const answer = new Promise((resolve, reject) => { this.pending.set(id, { resolve, reject, progress }); });
    this.started().postMessage({ ...message, id }, transfer);
    return { id, answer };
  }

  /** A message that gets no answer (cancel, live-gain, live-octave). */
  post(message) {
    this.started().postMessage(message);
  }

  started() {
    if (this.worker) return this.worker;
    this.worker = new Worker(new URL('./render-worker.mjs', import.meta.url), { type: 'module' });
    this.worker.onmessage = ({ data }) => this.receive(data);
    this.worker.onerror = (event) => {
      event.preventDefault();
      const error = new Error(`the renderer stopped (${event.message || 'script error'}): reload the page`);
      for (const waiting of this.pending.values()) waiting.reject(error);
      this.pending.clear();
      this.worker = null;
    };
    return this.worker;
  }

  receive(data) {
    if (data.type === 'live-error') { this.onLiveError(data.message); return; }
    const waiting = this.pending.get(data.id);
    if (!waiting) return;
    if (data.type === 'progress') { waiting.progress?.(data.done, data.total); return; }
    this.pending.delete(data.id);
    if (data.type === 'error') {
      waiting.reject(Object.assign(new Error(data.message), { cancelled: data.cancelled, stage: data.stage }));
    } else {
      waiting.resolve(data);
    }
  }
}
