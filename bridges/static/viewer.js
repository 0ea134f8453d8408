// opendance browser viewer: a skeleton in 3D fed by the WebSocket stream.
// Binary frame layout: see opendance/bridges/wire_format.py (little-endian, 736 bytes).
import * as THREE from 'three';
import { OrbitControls } from '/static/vendor/OrbitControls.js';

// SMPL-24 parents, AIST++ joint order (opendance/data/smpl_skeleton.json).
const PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21];
const N = 24, MAGIC = 0x3146444f; // "ODF1" read as little-endian uint32
const JOINTS_OFFSET = 448;

const el = (id) => document.getElementById(id);
const ui = { conn: el('conn'), count: el('frame-count'), fps: el('fps'), tempo: el('tempo'), beat: el('beat'),
             energy: el('energy-now'), source: el('source'), status: el('status-line'), reply: el('reply'),
};

// ---------------------------------------------------------------- scene
let renderer = null;
try {
  renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(Math.min(window.devicePixelRatio, 2));
  el('view').appendChild(renderer.domElement);
} catch (err) {
  // No WebGL: keep the stream, counters and controls working; say why there is no 3D view.
  el('view').textContent = 'WebGL is not available in this browser: ' + err.message;
}
const scene = new THREE.Scene();
scene.background = new THREE.Color(0x101418);
const camera = new THREE.PerspectiveCamera(45, 1, 0.05, 100);
camera.position.set(1.6, 1.5, 3.4);
const controls = new OrbitControls(camera, renderer ? renderer.domElement : document.body);
controls.target.set(0, 0.9, 0);
controls.update();
scene.add(new THREE.HemisphereLight(0xffffff, 0x334455, 2.0));
const sun = new THREE.DirectionalLight(0xffffff, 1.5);
sun.position.set(2, 4, 3);
scene.add(sun);
const grid = new THREE.GridHelper(10, 20, 0x556677, 0x2a3440);
scene.add(grid);
const floorMat = new THREE.MeshStandardMaterial({ color: 0x1a2129, emissive: 0xffcc44, emissiveIntensity: 0 });
const floor = new THREE.Mesh(new THREE.CircleGeometry(5, 48), floorMat);
floor.rotation.x = -Math.PI / 2;
floor.position.y = -0.001;
scene.add(floor);

const jointMat = new THREE.MeshStandardMaterial({ color: 0xf0c040 });
const jointMeshes = [];
for (let j = 0; j < N; j++) {
  const m = new THREE.Mesh(new THREE.SphereGeometry(j === 15 ? 0.09 : 0.035, 16, 12), jointMat);
  scene.add(m);
  jointMeshes.push(m);
}
// One unit cylinder per bone (child joint j, parent PARENTS[j]), stretched every frame.
const boneMat = new THREE.MeshStandardMaterial({ color: 0x66ccff });
const boneGeo = new THREE.CylinderGeometry(0.022, 0.022, 1, 10);
const boneMeshes = [null];
for (let j = 1; j < N; j++) {
  const m = new THREE.Mesh(boneGeo, boneMat);
  scene.add(m);
  boneMeshes.push(m);
}
const UP = new THREE.Vector3(0, 1, 0), va = new THREE.Vector3(), vb = new THREE.Vector3(), dir = new THREE.Vector3();

function resize() {
  const w = window.innerWidth, h = window.innerHeight;
  if (renderer) renderer.setSize(w, h);
  camera.aspect = w / h;
  camera.updateProjectionMatrix();
}
window.addEventListener('resize', resize);
resize();

// ---------------------------------------------------------------- state
const state = { frames: 0, lastIndex: -1, lastPhase: 0, flash: 0, beatAt: -1e9, fpsT0: performance.now(), fpsN: 0,
                joints: new Float32Array(N * 3), root: [0, 0.9, 0], ws: null, nextId: 1 };
window.opendanceViewer = state; // for tests and the console

function applyFrame(f) {
  state.frames += 1;
  state.fpsN += 1;
  state.lastIndex = f.frame;
  state.joints.set(f.joints);
  state.root = f.root;
  ui.count.textContent = String(state.frames);
  ui.count.dataset.frames = String(state.frames);
  if (f.beat_phase < state.lastPhase - 0.5 && f.tempo_bpm > 0) state.beatAt = performance.now(); // wrapped: a beat
  state.lastPhase = f.beat_phase;
  ui.tempo.textContent = f.tempo_bpm > 0 ? f.tempo_bpm.toFixed(1) : '-';
  ui.energy.textContent = f.energy.toFixed(2);
  ui.beat.classList.toggle('on', f.tempo_bpm > 0 && f.beat_phase < 0.15);
  if (f.source !== undefined) ui.source.textContent = f.source;
}

function decodeBinary(buf) {
  const dv = new DataView(buf);
  if (buf.byteLength !== 736 || dv.getUint32(0, true) !== MAGIC) return null;
  return {
    frame: dv.getUint32(8, true), fps: dv.getFloat32(12, true), time_s: dv.getFloat64(16, true),
    audio_time_s: dv.getFloat64(24, true), beat_phase: dv.getFloat32(32, true), tempo_bpm: dv.getFloat32(36, true),
    beat_confidence: dv.getFloat32(40, true), downbeat_phase: dv.getFloat32(44, true), energy: dv.getFloat32(48, true),
    root: [dv.getFloat32(52, true), dv.getFloat32(56, true), dv.getFloat32(60, true)],
    joints: new Float32Array(buf, JOINTS_OFFSET, N * 3),
  };
}

function onMessage(ev) {
  if (ev.data instanceof ArrayBuffer) {
    const f = decodeBinary(ev.data);
    if (f) applyFrame(f);
    return;
  }
  let msg;
  try { msg = JSON.parse(ev.data); } catch { return; }
  if (msg.type === 'frame') applyFrame(msg);
  else if (msg.type === 'status') {
    const parts = [];
    for (const [k, v] of Object.entries(msg)) {
      if (k === 'type' || k === 'v' || k === 'controls') continue;
      parts.push(`${k} ${typeof v === 'number' ? +v.toFixed(3) : JSON.stringify(v)}`);
    }
    ui.status.textContent = parts.join(' · ');
    if (msg.controls) showControls(msg.controls);
  } else if (msg.type === 'ack') { ui.reply.className = ''; ui.reply.textContent = 'applied ' + JSON.stringify(msg.applied); }
  else if (msg.type === 'error') { ui.reply.className = 'err'; ui.reply.textContent = msg.error; }
}

// Reflect the engine's current controls in the form, except the field being edited.
function showControls(c) {
  const set = (id, prop, value) => {
    const input = el(id);
    if (value !== undefined && value !== null && document.activeElement !== input) input[prop] = value;
  };
  set('style', 'value', c.style);
  set('energy', 'value', c.energy);
  set('steps', 'value', c.steps);
  set('refine', 'checked', c.refine);
  set('frozen', 'checked', c.frozen);
}

function connect() {
  const page = new URLSearchParams(location.search);
  const q = new URLSearchParams({ format: page.get('format') || 'binary' });
  if (page.get('token')) q.set('token', page.get('token'));
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${proto}://${location.host}/ws?${q}`);
  ws.binaryType = 'arraybuffer';
  ws.onopen = () => { ui.conn.textContent = 'connected'; ui.conn.className = 'ok'; };
  ws.onmessage = onMessage;
  ws.onclose = () => { ui.conn.textContent = 'disconnected'; ui.conn.className = 'bad'; setTimeout(connect, 1000); };
  state.ws = ws;
}
connect();

el('controls').addEventListener('submit', (ev) => {
  ev.preventDefault();
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return;
  const set = { style: el('style').value, energy: parseFloat(el('energy').value), steps: parseInt(el('steps').value, 10),
                refine: el('refine').checked, frozen: el('frozen').checked };
  state.ws.send(JSON.stringify({ type: 'control', id: state.nextId++, set }));
});

// ---------------------------------------------------------------- render loop
function render() {
  const p = state.joints;
  for (let j = 0; j < N; j++) jointMeshes[j].position.set(p[3 * j], p[3 * j + 1], p[3 * j + 2]);
  for (let j = 1; j < N; j++) {
    const a = PARENTS[j];
    va.set(p[3 * a], p[3 * a + 1], p[3 * a + 2]);
    vb.set(p[3 * j], p[3 * j + 1], p[3 * j + 2]);
    dir.subVectors(vb, va);
    const len = dir.length();
    const m = boneMeshes[j];
    m.position.addVectors(va, vb).multiplyScalar(0.5);
    m.scale.set(1, Math.max(len, 1e-4), 1);
    if (len > 1e-6) m.quaternion.setFromUnitVectors(UP, dir.divideScalar(len));
  }
  // keep the orbit target on the dancer, smoothly
  controls.target.x += (state.root[0] - controls.target.x) * 0.05;
  controls.target.z += (state.root[2] - controls.target.z) * 0.05;
  controls.update();
  state.flash = Math.exp(-(performance.now() - state.beatAt) / 120); // 120 ms decay after each beat
  floorMat.emissiveIntensity = 0.25 * state.flash; // the floor glows on the beat
  const now = performance.now();
  if (now - state.fpsT0 > 1000) {
    ui.fps.textContent = (1000 * state.fpsN / (now - state.fpsT0)).toFixed(1);
    state.fpsT0 = now; state.fpsN = 0;
  }
  if (renderer) renderer.render(scene, camera);
  requestAnimationFrame(render);
}
requestAnimationFrame(render);
