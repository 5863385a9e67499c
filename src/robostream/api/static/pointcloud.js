/* robostream viewer: point clouds in 3D (WebGL 1, no library).
 *
 *   const cloud = await RobostreamPointCloud.decode(bytes, "drc" | "ply");  // {positions, colors, count}
 *   const view = new RobostreamPointCloud.View(canvas);  view.show(cloud);
 *
 * Formats: Draco (.drc, the processors' compacted clouds; decoded by Google's Draco decoder in
 * WebAssembly, vendor/draco/, loaded on first use) and PLY (.ply, the robots' own: ASCII or
 * binary, x/y/z and optional red/green/blue vertex properties).
 * The view: drag to orbit, mouse wheel to zoom, double-click to reset; points without colours
 * are coloured by height. */
(() => {
  "use strict";

  const DRACO_DIR = "/static/vendor/draco/";
  let draco = null;  // a promise of the decoder module, made once

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = src;
      script.onload = resolve;
      script.onerror = () => reject(new Error(`could not load ${src}`));
      document.head.append(script);
    });
  }

  function dracoModule() {
    if (!draco) {
      draco = (async () => {
        if (!window.DracoDecoderModule) await loadScript(`${DRACO_DIR}draco_wasm_wrapper.js`);
        const response = await fetch(`${DRACO_DIR}draco_decoder.wasm`);
        if (!response.ok) throw new Error(`the Draco decoder did not load (HTTP ${response.status})`);
        const wasmBinary = await response.arrayBuffer();
        return new Promise((resolve) => {
          window.DracoDecoderModule({ wasmBinary, onModuleLoaded: (module) => resolve(module) });
        });
      })();
      draco.catch(() => { draco = null; });
    }
    return draco;
  }

  /** A Draco point cloud (or mesh: its vertices) -> {positions, colors, count}. */
  async function decodeDraco(bytes) {
    const m = await dracoModule();
    const decoder = new m.Decoder();
    const buffer = new m.DecoderBuffer();
    const cloud = new m.PointCloud();
    try {
      buffer.Init(new Int8Array(bytes), bytes.byteLength);
      const status = decoder.DecodeBufferToPointCloud(buffer, cloud);
      if (!status.ok()) throw new Error(`not a Draco point cloud: ${status.error_msg()}`);
      const count = cloud.num_points();
      const positions = readAttribute(m, decoder, cloud, m.POSITION, count, 3, Float32Array);
      if (!positions) throw new Error("the Draco point cloud has no positions");
      const colors = readAttribute(m, decoder, cloud, m.COLOR, count, 3, Uint8Array);
      return { positions, colors, count, format: "drc" };
    } finally {
      m.destroy(cloud);
      m.destroy(buffer);
      m.destroy(decoder);
    }
  }

  function readAttribute(m, decoder, cloud, type, count, size, ArrayType) {
    const id = decoder.GetAttributeId(cloud, type);
    if (id < 0) return null;
    const attribute = decoder.GetAttribute(cloud, id);
    const components = attribute.num_components();
    const floats = ArrayType === Float32Array;
    const values = floats ? new m.DracoFloat32Array() : new m.DracoUInt8Array();
    try {
      if (floats) decoder.GetAttributeFloatForAllPoints(cloud, attribute, values);
      else decoder.GetAttributeUInt8ForAllPoints(cloud, attribute, values);
      const out = new ArrayType(count * size);
      for (let i = 0; i < count; i++) {
        for (let c = 0; c < size; c++) out[i * size + c] = c < components ? values.GetValue(i * components + c) : 0;
      }
      return out;
    } finally {
      m.destroy(values);
    }
  }

  const PLY_TYPES = {
    char: ["getInt8", 1], int8: ["getInt8", 1], uchar: ["getUint8", 1], uint8: ["getUint8", 1],
    short: ["getInt16", 2], int16: ["getInt16", 2], ushort: ["getUint16", 2], uint16: ["getUint16", 2],
    int: ["getInt32", 4], int32: ["getInt32", 4], uint: ["getUint32", 4], uint32: ["getUint32", 4],
    float: ["getFloat32", 4], float32: ["getFloat32", 4], double: ["getFloat64", 8], float64: ["getFloat64", 8],
  };

  /** A PLY's vertex element (ASCII or binary; the vertex element must come first) -> {positions, colors, count}. */
  function decodePly(bytes) {
    const head = new TextDecoder("latin1").decode(new Uint8Array(bytes, 0, Math.min(bytes.byteLength, 4096)));
    const end = head.indexOf("end_header");
    if (!head.startsWith("ply") || end < 0) throw new Error("not a PLY file");
    const bodyStart = head.indexOf("\n", end) + 1;
    const lines = head.slice(0, end).split(/\r?\n/);
    const format = (lines.find((l) => l.startsWith("format")) || "format ascii").split(/\s+/)[1];
    let count = 0, inVertex = false;
    const fields = [];
    for (const line of lines) {
      const parts = line.trim().split(/\s+/);
      if (parts[0] === "element") { inVertex = parts[1] === "vertex"; if (inVertex) count = Number(parts[2]); }
      else if (parts[0] === "property" && inVertex && parts[1] !== "list") fields.push([parts[2], parts[1]]);
    }
    const index = Object.fromEntries(fields.map(([name], i) => [name, i]));
    if (!["x", "y", "z"].every((k) => k in index)) throw new Error("the PLY has no x, y, z vertex properties");
    const hasColor = ["red", "green", "blue"].every((k) => k in index);
    const positions = new Float32Array(count * 3);
    const colors = hasColor ? new Uint8Array(count * 3) : null;
    const put = (i, row) => {
      positions[i * 3] = row[index.x]; positions[i * 3 + 1] = row[index.y]; positions[i * 3 + 2] = row[index.z];
      if (colors) { colors[i * 3] = row[index.red]; colors[i * 3 + 1] = row[index.green]; colors[i * 3 + 2] = row[index.blue]; }
    };
    if (format === "ascii") {
      const rows = new TextDecoder().decode(new Uint8Array(bytes, bodyStart)).split(/\r?\n/);
      for (let i = 0; i < count; i++) put(i, rows[i].trim().split(/\s+/).map(Number));
    } else {
      const little = format === "binary_little_endian";
      const view = new DataView(bytes, bodyStart);
      const readers = fields.map(([, type]) => PLY_TYPES[type]);
      if (readers.some((r) => !r)) throw new Error("the PLY has a vertex property of an unknown type");
      let offset = 0;
      const row = new Array(fields.length);
      for (let i = 0; i < count; i++) {
        readers.forEach(([getter, size], k) => { row[k] = view[getter](offset, little); offset += size; });
        put(i, row);
      }
    }
    return { positions, colors, count, format: "ply" };
  }

  /** bytes (an ArrayBuffer) of a Draco ("drc") or PLY ("ply") point cloud -> {positions, colors, count, format}. */
  async function decode(bytes, format) {
    const magic = new TextDecoder("latin1").decode(new Uint8Array(bytes, 0, Math.min(5, bytes.byteLength)));
    if (format === "ply" || magic.startsWith("ply")) return decodePly(bytes);
    if (format === "drc" || magic === "DRACO") return decodeDraco(bytes);
    throw new Error(`unknown point cloud format ${format}`);
  }

  const VERTEX = `
    attribute vec3 position; attribute vec3 color;
    uniform mat4 matrix; uniform float size;
    varying vec3 vColor;
    void main() { gl_Position = matrix * vec4(position, 1.0); gl_PointSize = size; vColor = color; }`;
  const FRAGMENT = `
    precision mediump float; varying vec3 vColor;
    void main() { gl_FragColor = vec4(vColor, 1.0); }`;

  function compile(gl, type, source) {
    const shader = gl.createShader(type);
    gl.shaderSource(shader, source);
    gl.compileShader(shader);
    if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(shader));
    return shader;
  }

  function multiply(a, b) {  // column-major 4x4
    const out = new Float32Array(16);
    for (let c = 0; c < 4; c++) {
      for (let r = 0; r < 4; r++) {
        let s = 0;
        for (let k = 0; k < 4; k++) s += a[k * 4 + r] * b[c * 4 + k];
        out[c * 4 + r] = s;
      }
    }
    return out;
  }

  /** Height (the z axis, robots' convention) -> a blue-to-yellow ramp, for clouds without colours. */
  function heightColors(positions, count) {
    let lo = Infinity, hi = -Infinity;
    for (let i = 0; i < count; i++) { lo = Math.min(lo, positions[i * 3 + 2]); hi = Math.max(hi, positions[i * 3 + 2]); }
    const out = new Float32Array(count * 3);
    for (let i = 0; i < count; i++) {
      const t = hi > lo ? (positions[i * 3 + 2] - lo) / (hi - lo) : 0.5;
      out[i * 3] = 0.2 + 0.8 * t; out[i * 3 + 1] = 0.5 + 0.4 * t; out[i * 3 + 2] = 1.0 - 0.8 * t;
    }
    return out;
  }

  class View {
    constructor(canvas) {
      this.canvas = canvas;
      const gl = canvas.getContext("webgl", { preserveDrawingBuffer: true, antialias: false });
      if (!gl) throw new Error("this browser has no WebGL: point clouds cannot be drawn");
      this.gl = gl;
      const program = gl.createProgram();
      gl.attachShader(program, compile(gl, gl.VERTEX_SHADER, VERTEX));
      gl.attachShader(program, compile(gl, gl.FRAGMENT_SHADER, FRAGMENT));
      gl.linkProgram(program);
      if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(program));
      this.program = program;
      this.buffers = { position: gl.createBuffer(), color: gl.createBuffer() };
      this.count = 0;
      this.yaw = -0.6; this.pitch = 0.5; this.distance = 2.5;
      this.attachControls();
    }

    /** Upload a decoded cloud and frame it (centred, scaled to its bounding box). */
    show(cloud) {
      const { gl } = this;
      const { positions, count } = cloud;
      const lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
      for (let i = 0; i < count; i++) {
        for (let c = 0; c < 3; c++) { lo[c] = Math.min(lo[c], positions[i * 3 + c]); hi[c] = Math.max(hi[c], positions[i * 3 + c]); }
      }
      this.center = count ? lo.map((v, c) => (v + hi[c]) / 2) : [0, 0, 0];
      this.radius = count ? Math.max(1e-6, Math.hypot(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]) / 2) : 1;
      const colors = cloud.colors ? Float32Array.from(cloud.colors, (v) => v / 255) : heightColors(positions, count);
      gl.bindBuffer(gl.ARRAY_BUFFER, this.buffers.position);
      gl.bufferData(gl.ARRAY_BUFFER, positions, gl.STATIC_DRAW);
      gl.bindBuffer(gl.ARRAY_BUFFER, this.buffers.color);
      gl.bufferData(gl.ARRAY_BUFFER, colors, gl.STATIC_DRAW);
      this.count = count;
      this.reset();
    }

    reset() { this.yaw = -0.6; this.pitch = 0.5; this.distance = 2.5; this.draw(); }

    matrix() {
      const aspect = this.canvas.width / this.canvas.height;
      const f = 1 / Math.tan(Math.PI / 8), near = 0.01, far = 100;
      const projection = [f / aspect, 0, 0, 0, 0, f, 0, 0, 0, 0, (far + near) / (near - far), -1,
                          0, 0, (2 * far * near) / (near - far), 0];
      const s = 1 / this.radius, [cx, cy, cz] = this.center;
      // z up: turn the robot's frame so that z points up on screen, then orbit
      const model = [s, 0, 0, 0, 0, 0, -s, 0, 0, s, 0, 0, -cx * s, -cz * s, cy * s, 1];
      const cy_ = Math.cos(this.yaw), sy = Math.sin(this.yaw), cp = Math.cos(this.pitch), sp = Math.sin(this.pitch);
      const yaw = [cy_, 0, -sy, 0, 0, 1, 0, 0, sy, 0, cy_, 0, 0, 0, 0, 1];
      const pitch = [1, 0, 0, 0, 0, cp, sp, 0, 0, -sp, cp, 0, 0, 0, 0, 1];
      const view = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, -this.distance, 1];
      return multiply(projection, multiply(view, multiply(pitch, multiply(yaw, model))));
    }

    draw() {
      const { gl, program } = this;
      gl.viewport(0, 0, this.canvas.width, this.canvas.height);
      gl.clearColor(0.05, 0.07, 0.09, 1);
      gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
      if (!this.count) return;
      gl.enable(gl.DEPTH_TEST);
      gl.useProgram(program);
      for (const [name, buffer] of Object.entries(this.buffers)) {
        const location = gl.getAttribLocation(program, name);
        gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
        gl.enableVertexAttribArray(location);
        gl.vertexAttribPointer(location, 3, gl.FLOAT, false, 0, 0);
      }
      gl.uniformMatrix4fv(gl.getUniformLocation(program, "matrix"), false, this.matrix());
      gl.uniform1f(gl.getUniformLocation(program, "size"), 2.0);
      gl.drawArrays(gl.POINTS, 0, this.count);
    }

    /** Pixels that are not the background (what the tests check was drawn). */
    litPixels() {
      const { gl } = this;
      const w = this.canvas.width, h = this.canvas.height;
      const pixels = new Uint8Array(w * h * 4);
      gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, pixels);
      let lit = 0;
      for (let i = 0; i < pixels.length; i += 4) if (pixels[i] + pixels[i + 1] + pixels[i + 2] > 80) lit++;
      return lit;
    }

    attachControls() {
      const canvas = this.canvas;
      let drag = null;
      canvas.addEventListener("pointerdown", (e) => { drag = { x: e.clientX, y: e.clientY }; canvas.setPointerCapture(e.pointerId); });
      canvas.addEventListener("pointermove", (e) => {
        if (!drag) return;
        this.yaw += (e.clientX - drag.x) * 0.01;
        this.pitch = Math.max(-1.5, Math.min(1.5, this.pitch + (e.clientY - drag.y) * 0.01));
        drag = { x: e.clientX, y: e.clientY };
        this.draw();
      });
      const end = () => { drag = null; };
      canvas.addEventListener("pointerup", end);
      canvas.addEventListener("pointercancel", end);
      canvas.addEventListener("wheel", (e) => {
        e.preventDefault();
        this.distance = Math.max(0.2, Math.min(20, this.distance * Math.exp(e.deltaY * 0.001)));
        this.draw();
      }, { passive: false });
      canvas.addEventListener("dblclick", () => this.reset());
    }
  }

  window.RobostreamPointCloud = { decode, decodePly, View };
})();
