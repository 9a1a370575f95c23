// The connection to the server: OurChat v1 over WebSocket at /ws, with natter's extension
// frames opted in. Requests carry a request_id and are answered through promises; pushes are
// handed to `onPush`. The connection reconnects by itself (with back-off, at once when the
// browser comes back online) and resumes with the login token, telling the server which index
// of each chat it already holds (`since`), so that a drop loses and doubles nothing.

const HEARTBEAT_MS = 20000;
const HEARTBEAT_WAIT_MS = 10000;
const REQUEST_WAIT_MS = 30000;

export class ServerError extends Error {
  constructor(frame) {
    super(frame.message || frame.error || 'request failed');
    this.error = frame.error;
    this.errorCode = frame.error_code;
    this.frame = frame;
  }
}

export class Conn {
  constructor({ url, onPush, onState, since }) {
    this.url = url;
    this.onPush = onPush;
    this.onState = onState;
    this.since = since; // () => [{group_id|private_id, index}]
    this.ws = null;
    this.nextId = 1;
    this.waiting = new Map(); // request_id -> {resolve, reject, timer}
    this.token = null;
    this.ready = false; // logged in (or resumed) on the current socket
    this.readyWaiters = [];
    this.backoff = 500;
    this.retryTimer = null;
    this.beatTimer = null;
    this.stopped = false;
    this.state = 'closed';
    window.addEventListener('online', () => this.reconnectNow());
    window.addEventListener('offline', () => this.drop('offline'));
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.onState?.(state);
  }

  // Open a socket; resolves once it is open (not logged in).
  open() {
    this.stopped = false;
    if (this.ws && this.ws.readyState <= 1) return this.opening;
    this.setState('connecting');
    const ws = new WebSocket(this.url);
    this.ws = ws;
    this.opening = new Promise((resolve, reject) => {
      ws.onopen = () => {
        this.backoff = 500;
        resolve();
        this.startBeat();
        if (this.token) this.resume();
        else this.setState('open');
      };
      ws.onmessage = (e) => this.receive(e.data);
      ws.onclose = (e) => {
        reject(new Error('connection closed'));
        this.closed(ws, e.code);
      };
      ws.onerror = () => {};
    });
    this.opening.catch(() => {});
    return this.opening;
  }

  closed(ws, code) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.ready = false;
    clearInterval(this.beatTimer);
    for (const [, w] of this.waiting) {
      clearTimeout(w.timer);
      w.reject(new Error('connection lost'));
    }
    this.waiting.clear();
    if (code === 4001 || code === 4002) {
      // The login ended (revoked, password changed, account deleted or banned): do not resume.
      this.token = null;
      this.stopped = true;
      this.setState('ended');
      return;
    }
    if (this.stopped) {
      this.setState('closed');
      return;
    }
    this.setState('offline');
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.open(), navigator.onLine ? this.backoff : 2000);
    this.backoff = Math.min(this.backoff * 2, 10000);
  }

  // Close the socket now (the network went away, or a heartbeat went unanswered); it reopens.
  drop(why) {
    if (this.ws) {
      const ws = this.ws;
      try { ws.close(4000, why); } catch { /* already closing */ }
      this.closed(ws, 1006);
    }
  }

  reconnectNow() {
    if (this.stopped || (this.ws && this.ws.readyState <= 1)) return;
    clearTimeout(this.retryTimer);
    this.backoff = 500;
    this.open();
  }

  stop() {
    this.stopped = true;
    this.token = null;
    clearTimeout(this.retryTimer);
    if (this.ws) this.ws.close(1000, 'bye');
  }

  startBeat() {
    clearInterval(this.beatTimer);
    this.beatTimer = setInterval(() => {
      if (!this.ws || this.ws.readyState !== 1) return;
      const ws = this.ws;
      this.raw({ code: 107 }, HEARTBEAT_WAIT_MS).catch(() => {
        if (ws === this.ws) this.drop('heartbeat');
      });
    }, HEARTBEAT_MS);
  }

  async resume() {
    this.setState('resuming');
    try {
      const r = await this.raw({ code: 101, token: this.token, since: this.since() });
      if (r.state === 0) {
        this.ocid = r.ocid;
        this.becomeReady();
      } else if (r.state === 1) {
        this.token = null;
        this.stopped = true;
        this.setState('ended');
        this.ws?.close(1000, 'login ended');
      } else {
        this.drop('resume failed');
      }
    } catch {
      /* the socket closed: it reopens and resumes again */
    }
  }

  becomeReady() {
    this.ready = true;
    this.setState('online');
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of waiters) w();
  }

  whenReady() {
    if (this.ready) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  receive(text) {
    let f;
    try { f = JSON.parse(text); } catch { return; }
    if (f.request_id !== undefined && this.waiting.has(f.request_id)) {
      const w = this.waiting.get(f.request_id);
      this.waiting.delete(f.request_id);
      clearTimeout(w.timer);
      if (f.code === 100) w.reject(new ServerError(f));
      else w.resolve(f);
      return;
    }
    this.onPush?.(f);
  }

  // Send a frame on the current socket and wait for its reply (whatever the login state).
  raw(frame, wait = REQUEST_WAIT_MS) {
    const ws = this.ws;
    if (!ws || ws.readyState !== 1) return Promise.reject(new Error('not connected'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error('no answer from the server'));
      }, wait);
      this.waiting.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify({ ...frame, request_id: id }));
    });
  }

  // Send a frame once logged in, waiting for the connection if it is down.
  async request(frame) {
    await this.whenReady();
    return this.raw(frame);
  }

  // A frame that gets no reply on success (typing).
  notify(frame) {
    if (this.ready && this.ws?.readyState === 1) this.ws.send(JSON.stringify(frame));
  }

  async login(loginType, account, password) {
    await this.open();
    const r = await this.raw({ code: 6, login_type: loginType, account, password, ext: 1 });
    if (r.state !== 0) return r;
    this.token = r.token;
    this.ocid = r.ocid;
    this.becomeReady();
    return r;
  }

  async register(fields) {
    await this.open();
    return this.raw({ code: 4, ext: 1, ...fields });
  }

  // Resume a stored login; resolves to whether it still stands.
  async restore(token) {
    this.token = token;
    this.stopped = false;
    const ok = new Promise((resolve) => {
      this.readyWaiters.push(() => resolve(true));
      const watch = this.onState;
      this.onState = (s) => {
        watch?.(s);
        if (s === 'ended') resolve(false);
      };
    });
    this.open();
    return ok;
  }
}
