/* robostream ML-Dash viewer: pick a robot and session, watch pose and joints live, see the
 * newest frames, scrub and play history, or explore a whole session (History: min/max bands of
 * the level-of-detail pyramid, mouse wheel zooms, dragging pans, down to raw points).
 * Frames load progressively (thumbnail, then preview, the original on a click) in the frame
 * view, which follows the live camera or shows a frame picked in the session's frame list (a
 * virtual list: only the rows on screen are in the page); H.264 segments play as video and point
 * clouds are drawn in 3D (pointcloud.js). A Service Worker (sw.js) keeps what was viewed in
 * IndexedDB, so a session viewed once replays offline.
 * Plain JavaScript, no dependencies but the vendored Draco decoder, no network but the API.
 * A small form calls a method on the robot (POST /v1/robots/{id}/rpc) with a write token.
 * window.robostreamViewer exposes counters and the history view's state (tests read them),
 * zoomTo(fromUs, toUs), frameView (what the frame view shows) and storedOffline(). */
(() => {
  "use strict";

  const COLORS = ["#4fb3ff", "#ff7a6b", "#7ee2a0", "#f5c35b", "#c792ea", "#5ce1e6", "#ff9bd2", "#b0bec5"];
  const LIVE_WINDOW_US = 10_000_000;
  const HISTORY_CHUNK_US = 10_000_000;
  const MAX_SAMPLES = 20_000;
  const PAD = 32;                   // left margin of a plot (y labels); 4 px right, 24 px bottom
  const HISTORY_FIELDS = "pose.position,joints.angle";
  const MIN_SPAN_US = 10_000;       // the history view's deepest zoom: 10 ms
  const REFETCH_DELAY_MS = 150;     // zoom/pan settle this long before the visible range is fetched
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
    calls: 0,              // robot calls answered (the "Call the robot" form)
    sessionInfo: null,
    ws: null,
    playback: null,
    // the history view (mode "zoom"): what it shows and where its data came from
    historySource: null,   // "lod" (pyramid buckets) or "raw" (points), as the API answered
    historyLevel: null,    // pyramid level of lod buckets ("1s", "10s", "1m", "1h")
    historyBucketUs: null, // length of a lod bucket
    historyRange: null,    // [fromUs, toUs) shown
    historyLoaded: null,   // [fromUs, toUs) historyData was fetched for
    historyData: [],       // rows of the last answer: raw points or lod buckets
    historyBuckets: 0,     // rows drawn (those within historyRange)
    historyExtent: {},     // canvas id -> [low, high] of its y axis
    historyLoading: false, // a fetch is due or under way
    historyFetches: 0,     // answers drawn
    historyAborted: 0,     // fetches cancelled by a newer zoom or pan
    frameView: null,       // the frame view: {id, kind, tier, format, url, segment, points, error}
    frameList: { frames: 0, rows: 0, done: false },  // the session's frame list: loaded, in the page
    offline: { supported: false, controlled: false, warmed: 0 },  // the Service Worker
  };
  window.robostreamViewer = state;

  // -- API -------------------------------------------------------------------------------------

  function headers() {
    return state.token ? { Authorization: `Bearer ${state.token}` } : {};
  }

  async function failure(response) {
    if (response.status === 401) {
      document.querySelector(".token").hidden = false;
      return new Error("a read token is required");
    }
    let message = response.statusText;
    try { message = (await response.json()).message; } catch (_) { /* not JSON */ }
    return new Error(message);
  }

  async function api(path) {
    const response = await fetch(path, { headers: headers() });
    if (!response.ok) throw await failure(response);
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

    /** Clears the canvas (sized to its on-screen width: one canvas pixel per CSS pixel) and
     * draws the plot's frame. */
    frame() {
      const { canvas } = this;
      const width = Math.round(canvas.clientWidth);
      if (width > 0 && canvas.width !== width) canvas.width = width;
      const ctx = canvas.getContext("2d");
      const w = canvas.width, h = canvas.height;
      ctx.clearRect(0, 0, w, h);
      ctx.strokeStyle = "#2a3440";
      ctx.lineWidth = 1;
      ctx.strokeRect(PAD, 4, w - PAD - 4, h - 24);
      return { ctx, w, h };
    }

    draw() {
      if (state.mode === "zoom") { this.drawHistory(visibleHistoryRows()); return; }
      const { ctx, w, h } = this.frame();
      const pad = PAD;
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

    /** The history view: lod buckets as min-max bands (one per bucket, at least a pixel wide)
     * with the mean line, or raw points as a line (and dots when they are far apart), over
     * state.historyRange. Returns how many of the rows had a value to draw here. */
    drawHistory(rows) {
      const { ctx, w, h } = this.frame();
      const [from, to] = state.historyRange || [0, 1];
      const lod = state.historySource === "lod";
      const low = lod ? "min" : "values", high = lod ? "max" : "values";
      let added = false;
      for (const row of rows) {
        for (const name of Object.keys(row.values || {})) {
          if (this.select(name) && !this.names.includes(name)) { this.names.push(name); added = true; }
        }
      }
      if (added) { this.names.sort(); this.showLegend(); }
      let lo = Infinity, hi = -Infinity, drawn = 0;
      for (const row of rows) {
        let any = false;
        for (const name of this.names) {
          const a = (row[low] || {})[name], b = (row[high] || {})[name];
          if (typeof a === "number" && typeof b === "number") { lo = Math.min(lo, a); hi = Math.max(hi, b); any = true; }
        }
        if (any) drawn += 1;
      }
      ctx.fillStyle = "#8a96a3";
      ctx.font = "11px system-ui";
      const clock = (t) => new Date(t / 1000).toISOString().slice(11, 23);
      ctx.fillText(clock(from), PAD + 2, h - 6);
      ctx.fillText(clock(to), w - 90, h - 6);
      state.historyExtent[this.canvas.id] = drawn ? [lo, hi] : null;
      if (!drawn) {
        ctx.fillText(state.historyLoading ? "loading…" : "no data in this range", PAD + 8, 20);
        return 0;
      }
      ctx.fillText(hi.toFixed(2), 2, 14);
      ctx.fillText(lo.toFixed(2), 2, h - 22);
      if (hi - lo < 1e-9) { hi += 0.5; lo -= 0.5; }
      const plotW = w - PAD - 4, plotH = h - 24;
      const x = (t) => PAD + ((t - from) / (to - from)) * plotW;
      const y = (v) => 4 + (1 - (v - lo) / (hi - lo)) * plotH;
      ctx.save();
      ctx.beginPath();
      ctx.rect(PAD, 4, plotW, plotH);
      ctx.clip();
      this.names.forEach((name, i) => {
        const color = COLORS[i % COLORS.length];
        ctx.strokeStyle = color;
        ctx.fillStyle = color;
        ctx.lineWidth = 1.5;
        if (lod) {
          ctx.globalAlpha = 0.35;  // the band: every sample of the bucket lies within it
          for (const row of rows) {
            const a = row.min[name], b = row.max[name];
            if (typeof a !== "number" || typeof b !== "number") continue;
            const left = Math.floor(x(row.ts_us)), right = Math.max(left + 1, Math.round(x(row.end_us)));
            const top = Math.floor(y(b));
            ctx.fillRect(left, top, right - left, Math.max(1, Math.ceil(y(a)) - top));
          }
          ctx.globalAlpha = 1;
          ctx.beginPath();  // the mean, broken where buckets are empty
          let previousEnd = null;
          for (const row of rows) {
            const v = row.values[name];
            if (typeof v !== "number") { previousEnd = null; continue; }
            const px = x((row.ts_us + row.end_us) / 2);
            if (previousEnd === row.ts_us) ctx.lineTo(px, y(v)); else ctx.moveTo(px, y(v));
            previousEnd = row.end_us;
          }
          ctx.stroke();
        } else {
          ctx.beginPath();
          let started = false, count = 0;
          for (const row of rows) {
            const v = row.values[name];
            if (typeof v !== "number") continue;
            count += 1;
            if (started) ctx.lineTo(x(row.ts_us), y(v)); else { ctx.moveTo(x(row.ts_us), y(v)); started = true; }
          }
          ctx.stroke();
          if (count && plotW / count >= 4) {  // a few points: show each one
            for (const row of rows) {
              const v = row.values[name];
              if (typeof v !== "number") continue;
              ctx.beginPath();
              ctx.arc(x(row.ts_us), y(v), 2.5, 0, 2 * Math.PI);
              ctx.fill();
            }
          }
        }
      });
      ctx.restore();
      return drawn;
    }
  }

  const plots = [
    new Plot($("pose-plot"), $("pose-legend"), (n) => n.startsWith("pose.position.")),
    new Plot($("joints-plot"), $("joints-legend"), (n) => n.startsWith("joints.angle.")),
  ];

  function plotRow(row) {
    for (const plot of plots) plot.push(row.ts_us, row.values || {});
  }

  // -- frames: the newest-frames strip -------------------------------------------------------

  function thumbnailUrl(frame) {
    const urls = frame.urls || {};
    return urls.thumbnail || urls.rgb_thumbnail || urls.rgb || Object.values(urls)[0];
  }

  /** A live "frame" message as a frame list entry: {id, camera_id, timestamp_us, kinds, urls: {kind: url}}. */
  function liveEntry(message) {
    const kind = !message.kind || message.kind === "thumbnail" ? "rgb" : message.kind;
    const urls = message.urls || {};
    const url = urls[`${kind}_thumbnail`] || (kind === "rgb" ? urls.thumbnail : null) || urls[`${kind}_preview`]
      || urls[kind] || thumbnailUrl(message);
    return { id: `${state.robot}:${state.session}:${message.camera_id}-${message.timestamp_us}`,
             camera_id: message.camera_id, timestamp_us: message.timestamp_us, kinds: [kind], urls: { [kind]: url } };
  }

  const shownFrames = new Set();

  function clearThumbnails() {
    shownFrames.clear();
    $("thumbnails").innerHTML = "";
  }

  function addThumbnail(entry) {
    const url = Object.values(entry.urls)[0];
    const key = `${entry.camera_id}-${entry.timestamp_us}`;
    if (!url || formatOf(url) !== "image" || shownFrames.has(key)) return;
    shownFrames.add(key);
    const strip = $("thumbnails");
    const figure = document.createElement("figure");
    const img = document.createElement("img");
    // The live view is faster than the S3 sink: a new frame's object may land a second later.
    let tries = 0;
    img.onerror = () => { if (tries++ < 8) setTimeout(() => { img.src = url; }, 250 * tries); };
    img.src = url;
    img.alt = `${entry.camera_id} ${entry.timestamp_us}`;
    const caption = document.createElement("small");
    caption.textContent = `${entry.camera_id} ${clockTime(entry.timestamp_us)}`;
    figure.append(img, caption);
    figure.title = "show in the frame view";
    figure.onclick = () => { $("frame-follow").checked = false; showFrame(entry); };
    strip.prepend(figure);
    while (strip.children.length > 12) strip.lastChild.remove();
    state.frames += 1;
    showCounters();
    followLive(entry);
  }

  async function loadFrames(range) {
    try {
      const body = await api(`/v1/frames?${query({ robot: state.robot, session: state.session, tier: "thumbnail",
                                                   limit: 8, ...range })}`);
      for (const frame of body.frames) addThumbnail({ ...frame, urls: { [pickKind(frame)]: frame.urls[pickKind(frame)] } });
    } catch (error) { console.warn("frames:", error.message); }
  }

  function clockTime(us) {
    return new Date(us / 1000).toISOString().slice(11, 23);
  }

  // -- the frame view: thumbnail first, then the preview, the original on a click ------------

  const FORMATS = [[/\.(jpe?g|png|webp|gif|bmp)$/i, "image"], [/\.mp4$/i, "video"], [/\.(drc|ply)$/i, "pointcloud"]];
  const FOLLOW_EVERY_MS = 1000;  // the frame view follows the live camera at most this often
  const camera = { frame: null, kind: null, token: 0, cloudView: null, followed: 0, followTimer: null };

  /** What a URL holds, from its path's extension: "image", "video" (an H.264 segment) or "pointcloud". */
  function formatOf(url) {
    const path = new URL(url, location.href).pathname;
    const found = FORMATS.find(([pattern]) => pattern.test(path));
    return found ? found[1] : "image";
  }

  function pickKind(frame) {
    const kinds = frame.kinds || [];
    return kinds.includes("rgb") ? "rgb" : kinds.includes("depth") ? "depth" : kinds[0];
  }

  /** The frame (camera_id, timestamp_us) at a resolution tier, as GET /v1/frames lists it. The
   * range ends a millisecond later: MongoDB keeps frame times to the millisecond, so from = to
   * (µs) would be an empty range. */
  async function frameAt(frame, tier) {
    const ts = frame.timestamp_us;
    const body = await api(`/v1/frames?${query({ robot: state.robot, session: state.session,
                                                 camera: frame.camera_id, from: seconds(ts), to: seconds(ts + 1000),
                                                 tier, limit: 1 })}`);
    return body.frames.find((f) => f.timestamp_us === ts) || null;
  }

  /** Loads url off-screen and shows it once decoded: the lower tier stays until then. */
  function upgradeImage(url, tier) {
    return new Promise((resolve, reject) => {
      const next = new Image();
      next.onload = () => {
        const img = $("frame-image");
        img.src = url;
        img.dataset.tier = tier;
        img.hidden = false;
        resolve();
      };
      next.onerror = () => reject(new Error(`the ${tier} did not load`));
      next.src = url;
    });
  }

  function stageShows(what) {
    $("frame-image").hidden = what !== "image";
    $("frame-video").hidden = what !== "video";
    $("frame-cloud").hidden = what !== "pointcloud";
  }

  function showFrameInfo() {
    const view = state.frameView;
    if (!view) return;
    const parts = [`${view.kind}`, view.tier ? `${view.tier}${view.format ? ` (${view.format})` : ""}` : "loading…"];
    if (view.points) parts.push(`${view.points.toLocaleString("en")} points`);
    if (view.segment && view.tier !== "original") parts.push("preview is an H.264 segment");
    if (view.error) parts.push(view.error);
    $("frame-info").textContent = parts.join(" · ");
    $("frame-segment").hidden = !view.segment;
    $("frame-original").disabled = view.tier === "original";
  }

  /** Show a frame list entry: its thumbnail at once, then its preview; kind: rgb, depth, pointcloud. */
  async function showFrame(frame, kind) {
    const token = ++camera.token;
    const kinds = frame.kinds && frame.kinds.length ? frame.kinds : ["rgb"];
    kind = kind && kinds.includes(kind) ? kind : pickKind(frame) || kinds[0];
    camera.frame = frame;
    camera.kind = kind;
    const view = { id: frame.id, kind, tier: null, format: null, url: null, segment: null, points: 0, error: null };
    state.frameView = view;
    $("frame-title").textContent = `${frame.camera_id} ${clockTime(frame.timestamp_us)}`;
    $("frame-kinds").innerHTML = "";
    for (const k of kinds) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = k;
      button.className = k === kind ? "active" : "";
      button.onclick = () => showFrame(frame, k);
      $("frame-kinds").append(button);
    }
    $("frame-video").removeAttribute("src");
    showFrameInfo();
    if (kind === "pointcloud") { await showOriginal(); return; }  // one tier only: the cloud itself
    const thumbnail = (frame.urls || {})[kind];
    if (thumbnail && formatOf(thumbnail) === "image") {
      $("frame-image").src = thumbnail;
      $("frame-image").dataset.tier = "thumbnail";
      Object.assign(view, { tier: "thumbnail", format: "image", url: thumbnail });
      stageShows("image");
    } else stageShows(null);
    showFrameInfo();
    try {
      const preview = await frameAt(frame, "preview");
      const url = preview && preview.urls[kind];
      if (token !== camera.token || !url || url === view.url) return;
      if (formatOf(url) === "video") view.segment = url;  // the preview tier of RGB: an H.264 segment
      else if (formatOf(url) === "image") {
        await upgradeImage(url, "preview");
        if (token !== camera.token) return;
        Object.assign(view, { tier: "preview", format: "image", url });
        stageShows("image");
      }
    } catch (error) {
      if (token === camera.token) view.error = error.message;
    }
    if (token === camera.token) showFrameInfo();
  }

  /** On demand: the frame's original (an image, an H.264 segment, or a point cloud drawn in 3D). */
  async function showOriginal() {
    const token = camera.token, view = state.frameView;
    if (!view || !camera.frame) return;
    $("frame-follow").checked = false;
    try {
      const entry = await frameAt(camera.frame, "original");
      const url = entry && entry.urls[view.kind];
      if (!url) throw new Error(`no original ${view.kind} for this frame`);
      const format = formatOf(url);
      if (format === "image") await upgradeImage(url, "original");
      else if (format === "video") playSegment(url);
      else view.points = await drawCloud(url);
      if (token !== camera.token) return;
      Object.assign(view, { tier: "original", format, url });
      stageShows(format);
    } catch (error) {
      if (token === camera.token) view.error = error.message;
    }
    if (token === camera.token) showFrameInfo();
  }

  function playSegment(url) {
    const video = $("frame-video");
    video.src = url;
    video.dataset.segment = url;
    stageShows("video");
    video.play().catch(() => { /* autoplay may be refused: the controls are there */ });
  }

  async function drawCloud(url) {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`the point cloud did not load (HTTP ${response.status})`);
    const extension = new URL(url, location.href).pathname.split(".").pop().toLowerCase();
    const cloud = await window.RobostreamPointCloud.decode(await response.arrayBuffer(), extension);
    stageShows("pointcloud");
    if (!camera.cloudView) camera.cloudView = new window.RobostreamPointCloud.View($("frame-cloud"));
    camera.cloudView.show(cloud);
    return cloud.count;
  }

  /** In live mode with "follow" on, the frame view shows the newest camera frame (images only). */
  function followLive(entry) {
    if (state.mode !== "live" || !$("frame-follow").checked || entry.kinds[0] === "pointcloud") return;
    if (camera.frame && camera.frame.timestamp_us > entry.timestamp_us) return;
    camera.pending = entry;
    if (camera.followTimer) return;
    const wait = Math.max(0, camera.followed + FOLLOW_EVERY_MS - performance.now());
    camera.followTimer = setTimeout(() => {
      camera.followTimer = null;
      camera.followed = performance.now();
      if ($("frame-follow").checked) showFrame(camera.pending);
    }, wait);
  }

  state.cloudLitPixels = () => (camera.cloudView && !$("frame-cloud").hidden ? camera.cloudView.litPixels() : 0);
  $("frame-original").onclick = () => showOriginal();
  $("frame-image").onclick = () => { if (state.frameView && state.frameView.tier !== "original") showOriginal(); };
  $("frame-segment").onclick = () => {
    const view = state.frameView;
    if (!view || !view.segment) return;
    playSegment(view.segment);
    Object.assign(view, { tier: "preview", format: "video", url: view.segment });
    showFrameInfo();
  };

  // -- the session's frame list: virtual scrolling (only the rows on screen are in the page) --

  const ROW_HEIGHT = 44;
  const OVERSCAN = 4;     // rows kept beyond each edge of the visible ones
  const LIST_PAGE = 200;  // frames asked for at once, as the list scrolls near its end
  const list = { frames: [], ids: new Set(), done: false, loading: null, rows: new Map(), generation: 0 };

  function resetFrameList() {
    list.generation += 1;
    Object.assign(list, { frames: [], ids: new Set(), done: false, loading: null });
    for (const row of list.rows.values()) row.remove();
    list.rows.clear();
    $("frame-list").scrollTop = 0;
    renderFrameList();
  }

  async function loadMoreFrames() {
    if (list.done || list.loading || !state.robot || !state.session) return;
    const generation = list.generation;
    const last = list.frames[list.frames.length - 1];
    const [sessionStart] = historySpan();
    const from = last ? last.timestamp_us : sessionStart;  // inclusive: frames of other cameras at that time
    list.loading = api(`/v1/frames?${query({ robot: state.robot, session: state.session, tier: "thumbnail",
                                             from: seconds(from), limit: LIST_PAGE })}`);
    try {
      const body = await list.loading;
      if (generation !== list.generation) return;
      const fresh = body.frames.filter((f) => !list.ids.has(f.id));
      for (const frame of fresh) { list.ids.add(frame.id); list.frames.push(frame); }
      list.done = body.frames.length < LIST_PAGE || !fresh.length;
    } catch (error) {
      if (generation === list.generation) { list.done = true; console.warn("frame list:", error.message); }
    } finally {
      if (generation === list.generation) { list.loading = null; renderFrameList(); }
    }
  }

  function frameRow(frame, index) {
    const row = document.createElement("div");
    row.className = "frame-row";
    row.style.top = `${index * ROW_HEIGHT}px`;
    row.dataset.index = String(index);
    const kind = pickKind(frame);
    const url = (frame.urls || {})[kind];
    if (url && formatOf(url) === "image") {
      const img = document.createElement("img");
      img.src = url;
      img.alt = frame.id;
      row.append(img);
    } else {
      const badge = document.createElement("span");
      badge.className = "frame-badge";
      badge.textContent = kind === "pointcloud" ? "3D" : "—";
      row.append(badge);
    }
    const label = document.createElement("span");
    label.textContent = `#${index + 1} · ${frame.camera_id} · ${clockTime(frame.timestamp_us)} · ${(frame.kinds || []).join(", ")}`;
    row.append(label);
    row.onclick = () => { $("frame-follow").checked = false; showFrame(frame); };
    return row;
  }

  function renderFrameList() {
    const box = $("frame-list");
    box.firstElementChild.style.height = `${list.frames.length * ROW_HEIGHT}px`;
    const first = Math.max(0, Math.floor(box.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(list.frames.length, Math.ceil((box.scrollTop + box.clientHeight) / ROW_HEIGHT) + OVERSCAN);
    for (const [index, row] of list.rows) {
      if (index < first || index >= last) { row.remove(); list.rows.delete(index); }
    }
    for (let index = first; index < last; index++) {
      if (!list.rows.has(index)) { const row = frameRow(list.frames[index], index); box.append(row); list.rows.set(index, row); }
    }
    Object.assign(state.frameList, { frames: list.frames.length, rows: list.rows.size, done: list.done });
    $("frame-count").textContent = list.frames.length
      ? `${list.frames.length}${list.done ? "" : "+"} frames` : (list.done ? "no frames" : "");
    if (last >= list.frames.length - OVERSCAN * 4) loadMoreFrames();
  }

  $("frame-list").addEventListener("scroll", () => requestAnimationFrame(renderFrameList), { passive: true });

  // -- live ------------------------------------------------------------------------------------

  function stopLive() {
    if (state.ws) { state.ws.onclose = null; state.ws.close(); state.ws = null; }
  }

  function startLive() {
    stopPlayback();
    stopHistory();
    stopLive();
    if (!state.robot || !state.session) return;
    state.mode = "live";
    plots.forEach((p) => { p.clear(); p.windowUs = LIVE_WINDOW_US; });
    $("live-button").classList.add("active");
    if (!navigator.onLine) { setStatus("offline · History and frames replay from the browser cache", "error"); return; }
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/v1/live?${query({
      robot: state.robot, session: state.session, types: "time_series,images", access_token: state.token })}`);
    state.ws = ws;
    setStatus("connecting…");
    ws.onopen = () => setStatus("live", "live");
    ws.onerror = () => setStatus("connection error", "error");
    ws.onclose = () => { setStatus("disconnected", "error"); setTimeout(() => { if (state.ws === ws) startLive(); }, 2000); };
    ws.onmessage = (event) => {
      if (state.ws !== ws) return;  // closed: another view took over
      const message = JSON.parse(event.data);
      state.messages += 1;
      if (message.type === "snapshot" || message.type === "time_series") {
        for (const point of message.points || []) plotRow(point);
        state.livePoints += (message.points || []).length;
      } else if (message.type === "frame") {
        addThumbnail(liveEntry(message));
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
    await readRows(response, onRow);
  }

  /** Calls onRow with each NDJSON row of the response body, as the lines arrive. */
  async function readRows(response, onRow) {
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
    stopHistory();
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
        await streamRows(path, (row) => {
          if (!row.error && !playback.stopped) { plotRow(row); state.historyRows += 1; }
        });
        loadFrames({ from: from / 1e6, to: to / 1e6 });
      } catch (error) { setStatus(error.message, "error"); return; }
      showCounters();
      from = to;
      const aheadMs = (from - (originUs + (performance.now() - clockStart) * 1000)) / 1000;
      if (aheadMs > 2000) await new Promise((r) => setTimeout(r, aheadMs - 2000));
    }
  }

  // -- history view: a whole session from the level-of-detail pyramid, zoom and pan -----------

  const explore = { span: null, controller: null, timer: null, frame: false, points: null };

  /** An ISO time with up to µs digits -> µs since the epoch (Date.parse stops at ms). */
  function isoToUs(iso) {
    const ms = iso ? Date.parse(iso) : NaN;
    if (Number.isNaN(ms)) return null;
    const sub = /\.\d{3}(\d{1,3})/.exec(iso);
    return ms * 1000 + (sub ? Number(sub[1].padEnd(3, "0")) : 0);
  }

  /** The session's [fromUs, toUs): sessionSpan() to the µs, its newest sample included. */
  function historySpan() {
    const info = state.sessionInfo || {};
    const [fallbackStart, fallbackEnd] = sessionSpan();
    const ended = isoToUs(info.ended_at), seen = isoToUs(info.last_seen);
    const ends = [ended, seen === null ? null : seen + 1].filter((v) => v !== null);
    const end = ends.length ? Math.max(...ends) : fallbackEnd;
    const start = Math.min(isoToUs(info.started_at) ?? fallbackStart, end);
    return [start, Math.max(end, start + MIN_SPAN_US)];
  }

  /** µs -> seconds since the epoch, exactly (no float rounding in the URL). */
  function seconds(us) {
    const whole = Math.floor(us / 1e6);
    return `${whole}.${String(Math.round(us - whole * 1e6)).padStart(6, "0")}`;
  }

  function duration(us) {
    if (us < 1_000_000) return `${+(us / 1000).toPrecision(3)} ms`;
    if (us < 60_000_000) return `${+(us / 1e6).toPrecision(3)} s`;
    if (us < 3_600_000_000) return `${+(us / 60e6).toPrecision(3)} min`;
    return `${+(us / 3600e6).toPrecision(3)} h`;
  }

  /** Points the plots can show: one bucket per pixel of their width. */
  function historyPoints() {
    const width = plots[0].canvas.clientWidth || plots[0].canvas.width;
    return Math.max(16, Math.round(width - PAD - 4));
  }

  function visibleHistoryRows() {
    const [from, to] = state.historyRange || [0, 0];
    return state.historyData.filter((row) => (row.end_us ?? row.ts_us + 1) > from && row.ts_us < to);
  }

  function renderHistory() {
    explore.frame = false;
    if (state.mode !== "zoom") return;
    const rows = visibleHistoryRows();
    for (const plot of plots) plot.drawHistory(rows);
    state.historyBuckets = rows.length;
    showHistoryInfo();
  }

  function requestHistoryRender() {
    if (explore.frame) return;
    explore.frame = true;
    requestAnimationFrame(renderHistory);
  }

  function showHistoryInfo() {
    const info = $("history-info");
    const [from, to] = state.historyRange;
    const when = (t) => new Date(t / 1000).toISOString().replace("T", " ").slice(0, 23);
    let what;
    if (!state.historySource) what = "loading…";
    else if (state.historySource === "lod") {
      what = `${state.historyBuckets} buckets of ${duration(state.historyBucketUs)} (pyramid level ` +
        `${state.historyLevel}): min–max bands and mean`;
    } else what = `${state.historyBuckets} raw points`;
    const stale = state.historyLoading && state.historySource ? " · loading…" : "";
    info.textContent = `${when(from)} – ${when(to)} (${duration(to - from)}) · ${what}${stale}`;
    info.hidden = false;
  }

  async function fetchHistory(range, maxPoints, signal) {
    const [from, to] = range;
    const path = `/v1/telemetry?${query({ robot: state.robot, session: state.session, from: seconds(from),
                                          to: seconds(to), fields: HISTORY_FIELDS, max_points: maxPoints })}`;
    const response = await fetch(path, { headers: { ...headers(), Accept: "application/x-ndjson" }, signal });
    if (!response.ok) throw await failure(response);
    const rows = [];
    await readRows(response, (row) => {
      if (row.error) throw new Error(row.error.message || "the telemetry stream failed");
      rows.push(row);
    });
    return {
      source: response.headers.get("X-Robostream-Source") || "raw",
      level: response.headers.get("X-Robostream-Level"),
      bucketUs: Number(response.headers.get("X-Robostream-Bucket-Us")) || null,
      rows,
    };
  }

  /** Fetch the visible range once zooming and panning have paused; an older fetch is cancelled. */
  function scheduleHistoryLoad(delayMs = REFETCH_DELAY_MS) {
    if (explore.controller) { explore.controller.abort(); explore.controller = null; }
    clearTimeout(explore.timer);
    state.historyLoading = true;
    explore.timer = setTimeout(loadHistory, delayMs);
  }

  async function loadHistory() {
    explore.timer = null;
    if (state.mode !== "zoom") return;
    const controller = new AbortController();
    explore.controller = controller;
    const range = state.historyRange.slice();
    explore.points = historyPoints();
    let answer;
    try {
      answer = await fetchHistory(range, explore.points, controller.signal);
    } catch (error) {
      if (controller.signal.aborted) { state.historyAborted += 1; return; }
      if (explore.controller === controller) {
        explore.controller = null;
        state.historyLoading = false;
        setStatus(error.message, "error");
      }
      return;
    }
    if (explore.controller !== controller) return;  // superseded (the view moved on)
    explore.controller = null;
    Object.assign(state, { historySource: answer.source, historyLevel: answer.level,
                           historyBucketUs: answer.bucketUs, historyLoaded: range, historyData: answer.rows,
                           historyLoading: false });
    state.historyFetches += 1;
    setStatus(answer.source === "lod" ? `history · ${answer.level} pyramid` : "history · raw points");
    renderHistory();
  }

  /** Show [fromUs, toUs) (kept within the session, at least MIN_SPAN_US long), then fetch it. */
  function setHistoryRange(fromUs, toUs, delayMs = REFETCH_DELAY_MS) {
    const [lo, hi] = explore.span;
    const span = Math.min(Math.max(toUs - fromUs, MIN_SPAN_US), hi - lo);
    let from = Math.round(Math.min(Math.max(fromUs + (toUs - fromUs - span) / 2, lo), hi - span));
    from = Math.max(from, lo);
    state.historyRange = [from, Math.round(from + span)];
    const [first, last] = sessionSpan();  // "Play from here" plays from the view's start
    $("scrubber").value = String(Math.round(((from - first) / (last - first)) * 1000));
    showScrubTime();
    requestHistoryRender();
    scheduleHistoryLoad(delayMs);
  }

  /** Zoom by factor (< 1: in) keeping the time under fraction (0..1 of the plot width) in place. */
  function zoomAround(fraction, factor) {
    const [from, to] = state.historyRange;
    const [lo, hi] = explore.span;
    const span = Math.min(Math.max((to - from) * factor, MIN_SPAN_US), hi - lo);
    const anchor = from + fraction * (to - from);
    const start = anchor - fraction * span;
    setHistoryRange(start, start + span);
  }

  function zoomTo(fromUs, toUs) {
    if (state.mode !== "zoom" || !explore.span) throw new Error("open the history view first");
    setHistoryRange(Number(fromUs), Number(toUs));
  }

  async function openHistory() {
    if (!state.robot || !state.session) return;
    stopLive();
    stopPlayback();
    stopHistory();
    state.mode = "zoom";
    document.body.classList.add("zoom");
    $("live-button").classList.remove("active");
    $("history-button").classList.add("active");
    Object.assign(state, { historySource: null, historyLevel: null, historyBucketUs: null, historyLoaded: null,
                           historyData: [], historyBuckets: 0, historyExtent: {}, historyLoading: true });
    plots.forEach((p) => p.clear());
    setStatus("history");
    try {  // the span may have grown since the session was picked
      state.sessionInfo = await api(`/v1/sessions/${state.robot}:${state.session}`);
    } catch (error) { console.warn("session:", error.message); }
    if (state.mode !== "zoom") return;  // another view was chosen meanwhile
    explore.span = historySpan();
    setHistoryRange(...explore.span, 0);
  }

  function stopHistory() {
    clearTimeout(explore.timer);
    explore.timer = null;
    if (explore.controller) { explore.controller.abort(); explore.controller = null; }
    state.historyLoading = false;
    document.body.classList.remove("zoom");
    $("history-button").classList.remove("active");
  }

  /** Wheel: zoom around the cursor; drag: pan; double-click: the whole session. */
  function attachHistoryControls(canvas) {
    const fraction = (event) => {
      const rect = canvas.getBoundingClientRect();
      const px = ((event.clientX - rect.left) / rect.width) * canvas.width;
      return Math.min(1, Math.max(0, (px - PAD) / (canvas.width - PAD - 4)));
    };
    let drag = null;
    canvas.addEventListener("wheel", (event) => {
      if (state.mode !== "zoom" || !state.historyRange) return;
      event.preventDefault();
      const step = event.deltaMode === 1 ? 0.05 : event.deltaMode === 2 ? 1 : 0.0015;  // lines, pages, pixels
      zoomAround(fraction(event), Math.exp(event.deltaY * step));
    }, { passive: false });
    canvas.addEventListener("pointerdown", (event) => {
      if (state.mode !== "zoom" || !state.historyRange || event.button !== 0) return;
      const rect = canvas.getBoundingClientRect();
      drag = { x: event.clientX, range: state.historyRange.slice(),
               widthCss: rect.width * ((canvas.width - PAD - 4) / canvas.width) };
      canvas.setPointerCapture(event.pointerId);
      canvas.classList.add("dragging");
    });
    canvas.addEventListener("pointermove", (event) => {
      if (!drag) return;
      const [from, to] = drag.range;
      const shift = (-(event.clientX - drag.x) / drag.widthCss) * (to - from);
      setHistoryRange(from + shift, to + shift);
    });
    const end = () => { drag = null; canvas.classList.remove("dragging"); };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
    canvas.addEventListener("dblclick", () => {
      if (state.mode === "zoom" && explore.span) setHistoryRange(...explore.span, 0);
    });
  }

  plots.forEach((p) => attachHistoryControls(p.canvas));
  window.addEventListener("resize", () => {  // a new width: as many buckets as it has pixels
    if (state.mode !== "zoom" || !state.historyRange) return;
    requestHistoryRender();
    if (historyPoints() !== explore.points) scheduleHistoryLoad();
  });
  state.zoomTo = zoomTo;

  // -- calling the robot: POST /v1/robots/{id}/rpc with the write token typed in the form ---------

  function showCall(text, kind) {
    const out = $("call-result");
    out.textContent = text;
    out.className = `call-result ${kind}`;
  }

  async function callRobot(event) {
    event.preventDefault();
    const method = $("call-method").value.trim();
    let params;
    try { params = JSON.parse($("call-params").value.trim() || "null"); } catch (error) {
      showCall(`params are not JSON: ${error.message}`, "error");
      return;
    }
    if (!state.robot) { showCall("pick a robot first", "error"); return; }
    const token = $("write-token").value;
    sessionStorage.setItem("robostream.writeToken", token);
    showCall(`calling ${method} on ${state.robot}…`, "");
    const response = await fetch(`/v1/robots/${encodeURIComponent(state.robot)}/rpc`, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({ method, params, timeout_s: Number($("call-timeout").value) || null }),
    });
    const body = await response.json().catch(() => ({ code: "http_error", message: response.statusText }));
    state.calls += 1;
    if (response.ok && body.status === "ok") {
      showCall(`${method} → ${JSON.stringify(body.result, null, 2)}  (${body.elapsed_ms} ms)`, "ok");
    } else if (response.ok) {
      showCall(`${state.robot} answered with an error: ${body.error.code}: ${body.error.message}`, "error");
    } else {
      showCall(`${response.status} ${body.code}: ${body.message}`, "error");
    }
  }

  $("write-token").value = sessionStorage.getItem("robostream.writeToken") || "";
  $("call-form").addEventListener("submit", (event) => {
    callRobot(event).catch((error) => showCall(error.message, "error"));
  });

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
    resetFrameList();
    showScrubTime();
    startLive();
  }

  // -- offline: the Service Worker keeps what was viewed (sw.js) ------------------------------

  /** Registers the Service Worker. On a first visit, what the page loaded before the worker took
   * control (resource entries without workerStart: no Service Worker saw them), then or later,
   * is fetched once more through it, so that it is kept too. */
  async function setupOffline() {
    const offline = state.offline;
    offline.supported = "serviceWorker" in navigator;
    if (!offline.supported) return;
    await navigator.serviceWorker.register("/static/sw.js", { scope: "/" });
    if (!navigator.serviceWorker.controller) {
      await new Promise((resolve) => navigator.serviceWorker.addEventListener("controllerchange", resolve, { once: true }));
    }
    offline.controlled = true;
    const seen = new Set();
    const warm = (url) => {
      if (seen.has(url) || !keptByWorker(url)) return;
      seen.add(url);
      const own = new URL(url).origin === location.origin;
      const options = own ? { headers: { ...headers(), Accept: "application/x-ndjson, */*" } } : { mode: "no-cors" };
      fetch(url, options).then((response) => response.blob()).then(() => { offline.warmed += 1; }, () => {});
    };
    const navigation = performance.getEntriesByType("navigation")[0];
    if (!navigation || !navigation.workerStart) warm(location.href);
    new PerformanceObserver((entries) => {
      for (const entry of entries.getEntries()) if (!entry.workerStart) warm(entry.name);
    }).observe({ type: "resource", buffered: true });
  }

  /** Whether sw.js keeps what url answers (mirrors its keyOf). */
  function keptByWorker(url) {
    const parsed = new URL(url);
    if (parsed.origin !== location.origin) return /[?&](X-Amz-Signature|Signature)=/.test(parsed.search);
    return parsed.pathname === "/" || parsed.pathname.startsWith("/static/")
      || (parsed.pathname.startsWith("/v1/") && parsed.pathname !== "/v1/live" && !parsed.pathname.endsWith("/rpc"));
  }

  /** What the Service Worker keeps, by kind: {page, static, api, history, frames, object}. */
  function storedOffline() {
    const worker = navigator.serviceWorker && navigator.serviceWorker.controller;
    if (!worker) return Promise.resolve({});
    return new Promise((resolve) => {
      const channel = new MessageChannel();
      channel.port1.onmessage = (event) => resolve(event.data);
      worker.postMessage({ type: "stored" }, [channel.port2]);
    });
  }

  state.storedOffline = storedOffline;
  window.addEventListener("online", () => { if (state.mode === "live") startLive(); });

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
    $("history-button").onclick = () => openHistory();
    $("live-button").onclick = () => {
      $("scrubber").value = "1000";
      showScrubTime();
      clearThumbnails();
      $("frame-follow").checked = true;
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
  setupOffline().catch((error) => console.warn("offline cache:", error.message));
})();
