/* robostream ML-Dash viewer: pick a robot and session, watch pose and joints live, see the
 * newest frames, scrub and play history. Plain JavaScript, no dependencies, no network but the API.
 * window.robostreamViewer exposes counters (tests read them). */
(() => {
  "use strict";

  const COLORS = ["#4fb3ff", "#ff7a6b", "#7ee2a0", "#f5c35b", "#c792ea", "#5ce1e6", "#ff9bd2", "#b0bec5"];
  const LIVE_WINDOW_US = 10_000_000;
  const HISTORY_CHUNK_US = 10_000_000;
  const MAX_SAMPLES = 20_000;
  const params = new URLSearchParams(location.search);
  const $ = (id) => document.getElementById(id);

  const state = {
    token: params.get("token") || localStorage.getItem("robostream.token") || "",
    robot: params.get("robot") || "",
    session: params.get("session") || "",
    mode: "idle",
    livePoints: 0,
    historyRows: 0,
    frames: 0,
    dropped: 0,
    messages: 0,
    sessionInfo: null,
    ws: null,
    playback: null,
  };
  window.robostreamViewer = state;

  // -- API -------------------------------------------------------------------------------------

  function headers() {
    return state.token ? { Authorization: `Bearer ${state.token}` } : {};
  }

  async function api(path) {
    const response = await fetch(path, { headers: headers() });
    if (response.status === 401) {
      document.querySelector(".token").hidden = false;
      throw new Error("a read token is required");
    }
    if (!response.ok) {
      let message = response.statusText;
      try { message = (await response.json()).message; } catch (_) { /* not JSON */ }
      throw new Error(message);
    }
    return response.json();
  }

  function query(values) {
    return new URLSearchParams(Object.entries(values).filter(([, v]) => v !== undefined && v !== null && v !== "")).toString();
  }

  function setStatus(text, kind) {
    const el = $("status");
    el.textContent = text;
    el.className = `status ${kind || ""}`;
  }

  function showCounters() {
    $("counters").textContent = `points ${state.livePoints + state.historyRows} · frames ${state.frames}` +
      (state.dropped ? ` · dropped ${state.dropped}` : "");
  }

  // -- plots -----------------------------------------------------------------------------------

  class Plot {
    constructor(canvas, legend, select) {
      this.canvas = canvas;
      this.legend = legend;
      this.select = select;  // metric name -> included?
      this.names = [];
      this.samples = [];     // {t, v: {name: value}}
      this.end = 0;
      this.windowUs = LIVE_WINDOW_US;
      this.dirty = false;
    }

    clear() { this.samples = []; this.names = []; this.end = 0; this.legend.innerHTML = ""; this.request(); }

    push(t, values) {
      const picked = {};
      let any = false;
      for (const [name, value] of Object.entries(values)) {
        if (this.select(name) && typeof value === "number") {
          picked[name] = value;
          any = true;
          if (!this.names.includes(name)) { this.names.push(name); this.names.sort(); this.showLegend(); }
        }
      }
      if (!any) return;
      const last = this.samples.length ? this.samples[this.samples.length - 1].t : -Infinity;
      if (t >= last) this.samples.push({ t, v: picked });
      else {  // late point: keep time order
        let i = this.samples.length - 1;
        while (i > 0 && this.samples[i - 1].t > t) i--;
        this.samples.splice(i, 0, { t, v: picked });
      }
      if (this.samples.length > MAX_SAMPLES) this.samples.splice(0, this.samples.length - MAX_SAMPLES);
      if (state.mode === "live") this.end = Math.max(this.end, t);
      this.request();
    }

    showLegend() {
      this.legend.innerHTML = this.names.map((n, i) =>
        `<span><i style="background:${COLORS[i % COLORS.length]}"></i>${n.split(".").slice(-2).join(".")}</span>`).join("");
    }

    request() {
      if (this.dirty) return;
      this.dirty = true;
      requestAnimationFrame(() => { this.dirty = false; this.draw(); });
    }

    draw() {
      const { canvas } = this;
      const ctx = canvas.getContext("2d");
      const w = canvas.width, h = canvas.height, pad = 32;
      ctx.clearRect(0, 0, w, h);
      ctx.strokeStyle = "#2a3440";
      ctx.strokeRect(pad, 4, w - pad - 4, h - 24);
      const start = this.end - this.windowUs;
      const visible = this.samples.filter((s) => s.t >= start && s.t <= this.end);
      if (!visible.length) return;
      let lo = Infinity, hi = -Infinity;
      for (const s of visible) for (const v of Object.values(s.v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
      if (hi - lo < 1e-9) { hi += 0.5; lo -= 0.5; }
      const x = (t) => pad + ((t - start) / this.windowUs) * (w - pad - 4);
      const y = (v) => 4 + (1 - (v - lo) / (hi - lo)) * (h - 24);
      ctx.fillStyle = "#8a96a3";
      ctx.font = "11px system-ui";
      ctx.fillText(hi.toFixed(2), 2, 14);
      ctx.fillText(lo.toFixed(2), 2, h - 22);
      ctx.fillText(new Date(this.end / 1000).toISOString().slice(11, 23), w - 90, h - 6);
      this.names.forEach((name, i) => {
        ctx.strokeStyle = COLORS[i % COLORS.length];
        ctx.lineWidth = 1.5;
        ctx.beginPath();
        let started = false;
        for (const s of visible) {
          const v = s.v[name];
          if (v === undefined) continue;
          if (started) ctx.lineTo(x(s.t), y(v)); else { ctx.moveTo(x(s.t), y(v)); started = true; }
        }
        ctx.stroke();
      });
    }
  }

  const plots = [
    new Plot($("pose-plot"), $("pose-legend"), (n) => n.startsWith("pose.position.")),
    new Plot($("joints-plot"), $("joints-legend"), (n) => n.startsWith("joints.angle.")),
  ];

  function plotRow(row) {
    for (const plot of plots) plot.push(row.ts_us, row.values || {});
  }

  // -- frames ----------------------------------------------------------------------------------

  function thumbnailUrl(frame) {
    const urls = frame.urls || {};
    return urls.thumbnail || urls.rgb_thumbnail || urls.rgb || Object.values(urls)[0];
  }

  const shownFrames = new Set();

  function clearThumbnails() {
    shownFrames.clear();
    $("thumbnails").innerHTML = "";
  }

  function addThumbnail(url, timestampUs, camera) {
    const key = `${camera}-${timestampUs}`;
    if (!url || shownFrames.has(key)) return;
    shownFrames.add(key);
    const strip = $("thumbnails");
    const figure = document.createElement("figure");
    const img = document.createElement("img");
    // The live view is faster than the S3 sink: a new frame's object may land a second later.
    let tries = 0;
    img.onerror = () => { if (tries++ < 8) setTimeout(() => { img.src = url; }, 250 * tries); };
    img.src = url;
    img.alt = `${camera} ${timestampUs}`;
    const caption = document.createElement("small");
    caption.textContent = `${camera} ${new Date(timestampUs / 1000).toISOString().slice(11, 23)}`;
    figure.append(img, caption);
    strip.prepend(figure);
    while (strip.children.length > 12) strip.lastChild.remove();
    state.frames += 1;
    showCounters();
  }

  async function loadFrames(range) {
    try {
      const body = await api(`/v1/frames?${query({ robot: state.robot, session: state.session, tier: "thumbnail",
                                                   limit: 8, ...range })}`);
      for (const frame of body.frames) addThumbnail(thumbnailUrl(frame), frame.timestamp_us, frame.camera_id);
    } catch (error) { console.warn("frames:", error.message); }
  }

  // -- live ------------------------------------------------------------------------------------

  function stopLive() {
    if (state.ws) { state.ws.onclose = null; state.ws.close(); state.ws = null; }
  }

  function startLive() {
    stopPlayback();
    stopLive();
    if (!state.robot || !state.session) return;
    state.mode = "live";
    plots.forEach((p) => { p.clear(); p.windowUs = LIVE_WINDOW_US; });
    $("live-button").classList.add("active");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/v1/live?${query({
      robot: state.robot, session: state.session, types: "time_series,images", access_token: state.token })}`);
    state.ws = ws;
    setStatus("connecting…");
    ws.onopen = () => setStatus("live", "live");
    ws.onerror = () => setStatus("connection error", "error");
    ws.onclose = () => { setStatus("disconnected", "error"); setTimeout(() => { if (state.ws === ws) startLive(); }, 2000); };
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      state.messages += 1;
      if (message.type === "snapshot" || message.type === "time_series") {
        for (const point of message.points || []) plotRow(point);
        state.livePoints += (message.points || []).length;
      } else if (message.type === "frame") {
        addThumbnail(thumbnailUrl(message), message.timestamp_us, message.camera_id);
      } else if (message.type === "dropped") {
        state.dropped = message.total;
      } else if (message.type === "error") {
        setStatus(message.message, "error");
      }
      showCounters();
    };
  }

  // -- history ---------------------------------------------------------------------------------

  function sessionSpan() {
    const info = state.sessionInfo || {};
    const parse = (iso) => (iso ? Date.parse(iso) * 1000 : null);
    const end = parse(info.ended_at) || parse(info.last_seen) || Date.now() * 1000;
    const start = parse(info.started_at) || end - 3_600_000_000;
    return [start, Math.max(end, start + 1)];
  }

  function scrubberTime() {
    const [start, end] = sessionSpan();
    return Math.round(start + (end - start) * (Number($("scrubber").value) / 1000));
  }

  function showScrubTime() {
    $("scrub-time").textContent = new Date(scrubberTime() / 1000).toISOString().replace("T", " ").slice(0, 23);
  }

  async function streamRows(path, onRow) {
    const response = await fetch(path, { headers: { ...headers(), Accept: "application/x-ndjson" } });
    if (!response.ok) throw new Error(`telemetry: HTTP ${response.status}`);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffered = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      const lines = buffered.split("\n");
      buffered = lines.pop();
      for (const line of lines) if (line) onRow(JSON.parse(line));
    }
    if (buffered.trim()) onRow(JSON.parse(buffered));
  }

  function stopPlayback() {
    if (state.playback) { state.playback.stopped = true; state.playback = null; }
    $("play-button").classList.remove("active");
  }

  async function play() {
    stopLive();
    stopPlayback();
    state.mode = "history";
    $("live-button").classList.remove("active");
    $("play-button").classList.add("active");
    plots.forEach((p) => { p.clear(); p.windowUs = LIVE_WINDOW_US; });
    clearThumbnails();
    const playback = { stopped: false };
    state.playback = playback;
    const [, sessionEnd] = sessionSpan();
    let from = scrubberTime();
    const clockStart = performance.now();
    const originUs = from;
    setStatus("playing history", "live");
    const tick = () => {
      if (playback.stopped) return;
      const cursor = originUs + (performance.now() - clockStart) * 1000;
      plots.forEach((p) => { p.end = cursor; p.request(); });
      const [start, end] = sessionSpan();
      $("scrubber").value = String(Math.min(1000, Math.round(((cursor - start) / (end - start)) * 1000)));
      showScrubTime();
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    while (!playback.stopped && from < sessionEnd) {
      const to = from + HISTORY_CHUNK_US;
      const path = `/v1/telemetry?${query({ robot: state.robot, session: state.session, from: from / 1e6,
                                            to: to / 1e6, fields: "pose.position,joints.angle", max_points: 2000 })}`;
      try {
        await streamRows(path, (row) => { if (!row.error) { plotRow(row); state.historyRows += 1; } });
        loadFrames({ from: from / 1e6, to: to / 1e6 });
      } catch (error) { setStatus(error.message, "error"); return; }
      showCounters();
      from = to;
      const aheadMs = (from - (originUs + (performance.now() - clockStart) * 1000)) / 1000;
      if (aheadMs > 2000) await new Promise((r) => setTimeout(r, aheadMs - 2000));
    }
  }

  // -- pickers ---------------------------------------------------------------------------------

  function fill(select, items, chosen) {
    select.innerHTML = items.map(([value, label]) => `<option value="${value}">${label}</option>`).join("");
    if (chosen && items.some(([v]) => v === chosen)) select.value = chosen;
  }

  async function loadRobots() {
    const body = await api("/v1/robots");
    fill($("robot"), body.robots.map((r) => [r.robot_id, `${r.robot_id} (${r.sessions})`]), state.robot);
    state.robot = $("robot").value;
  }

  async function loadSessions() {
    if (!state.robot) return;
    const body = await api(`/v1/sessions?${query({ robot: state.robot, limit: 50 })}`);
    const items = body.sessions.map((s) => [s.session_id, `${s.session_id} · ${s.status}`]);
    if (state.session && !items.some(([v]) => v === state.session)) items.unshift([state.session, state.session]);
    fill($("session"), items, state.session);
    state.session = $("session").value;
  }

  async function selectSession() {
    state.sessionInfo = null;
    clearThumbnails();
    if (state.robot && state.session) {
      try { state.sessionInfo = await api(`/v1/sessions/${state.robot}:${state.session}`); } catch (_) { /* new */ }
      loadFrames({});
    }
    showScrubTime();
    startLive();
  }

  async function init() {
    $("token").value = state.token;
    $("token").addEventListener("change", () => {
      state.token = $("token").value;
      localStorage.setItem("robostream.token", state.token);
      init();
    });
    $("robot").onchange = async () => { state.robot = $("robot").value; state.session = ""; await loadSessions(); selectSession(); };
    $("session").onchange = () => { state.session = $("session").value; selectSession(); };
    $("scrubber").oninput = () => { stopPlayback(); showScrubTime(); };
    $("play-button").onclick = () => play();
    $("live-button").onclick = () => {
      $("scrubber").value = "1000";
      showScrubTime();
      clearThumbnails();
      loadFrames({});
      startLive();
    };
    try {
      await loadRobots();
      await loadSessions();
      await selectSession();
    } catch (error) {
      setStatus(error.message, "error");
    }
  }

  init();
})();
