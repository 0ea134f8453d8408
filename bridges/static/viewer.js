// opendance browser viewer: capsule mannequins on a lit stage, fed by the WebSocket stream.
// Binary frame layout: see opendance/bridges/wire_format.py (little-endian, 736 bytes; 740 with
// a trailing uint32 avatar id for avatars 1-15). Page options (URL query):
//   ?format=binary|json   stream encoding (default binary)
//   ?clean=1              clean output for OBS / capture: the dancer and the stage only (key C)
//   ?bg=transparent|RRGGBB  background (transparent: an OBS browser source composites it)
//   ?orbit=1              slow camera orbit (key O);  ?token=...  the server's shared secret
import * as THREE from 'three';
import { OrbitControls } from '/static/vendor/OrbitControls.js';

// SMPL-24 parents, AIST++ joint order (opendance/data/smpl_skeleton.json).
const PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21];
const N = 24, MAGIC = 0x3146444f; // "ODF1" read as little-endian uint32
const FRAME_BYTES = 736, JOINTS_OFFSET = 448, BEATS_PER_BAR = 4;
const HEAD = 15;
// Capsule radius per bone, by child joint (metres); 0 = no capsule for that bone.
const RADIUS = [0, 0.085, 0.085, 0.1, 0.07, 0.07, 0.11, 0.05, 0.05, 0.125, 0.042, 0.042,
                0.055, 0.06, 0.06, 0.05, 0.058, 0.058, 0.048, 0.048, 0.04, 0.04, 0.034, 0.034];
const PALETTE = [0xe8c4a0, 0x8fd3ff, 0xffa8c8, 0xb8f5a0, 0xffd37a, 0xc7b3ff, 0x7fe0d0, 0xff9f80];
const STALE_MS = 3000; // an avatar without frames for this long leaves the stage

const page = new URLSearchParams(location.search);
const el = (id) => document.getElementById(id);
const ui = {
  conn: el('conn'), count: el('frame-count'), fps: el('fps'), tempo: el('tempo'), beat: el('beat'),
  bar: el('bar'), pips: [...el('pips').children], lock: el('lock'), lockBar: el('lock-bar'), lead: el('lead'),
  source: el('source'), steps: el('steps-now'), late: el('late'), dropped: el('dropped'), energy: el('energy-now'),
  avatars: el('avatars'), reply: el('reply'),
};
const setText = (node, text) => { if (node.textContent !== text) node.textContent = text; };

// ---------------------------------------------------------------- renderer, scene, lights
const bg = page.get('bg');
const transparent = bg === 'transparent';
let renderer = null;
try {
  renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true, alpha: transparent });
  renderer.setPixelRatio(Math.min(window.devicePixelRatio, 2));
  renderer.shadowMap.enabled = true;
  renderer.shadowMap.type = THREE.PCFSoftShadowMap;
  renderer.toneMapping = THREE.ACESFilmicToneMapping;
  renderer.toneMappingExposure = 1.05;
  el('view').appendChild(renderer.domElement);
} catch (err) {
  // No WebGL: keep the stream, the status panel and the controls working; say why there is no 3D view.
  el('view').textContent = 'WebGL is not available in this browser: ' + err.message;
}
const scene = new THREE.Scene();
if (transparent) {
  document.body.classList.add('transparent');
  if (renderer) renderer.setClearColor(0x000000, 0);
} else {
  const color = /^[0-9a-fA-F]{6}$/.test(bg || '') ? new THREE.Color('#' + bg) : new THREE.Color(0x0b0f14);
  scene.background = color;
  scene.fog = new THREE.Fog(color, 9, 22);
}
const camera = new THREE.PerspectiveCamera(38, 1, 0.05, 100);
camera.position.set(1.7, 1.55, 3.9);
const controls = new OrbitControls(camera, renderer ? renderer.domElement : document.body);
controls.target.set(0, 0.95, 0);
controls.enableDamping = true;
controls.maxPolarAngle = Math.PI * 0.495;
controls.minDistance = 1.2;
controls.maxDistance = 18;
controls.autoRotate = page.get('orbit') === '1';
controls.autoRotateSpeed = 0.6;
controls.update();

scene.add(new THREE.HemisphereLight(0xcfe3ff, 0x202630, 1.1));
const key = new THREE.DirectionalLight(0xfff1e0, 2.6);
key.position.set(2.5, 5, 3.5);
key.castShadow = true;
key.shadow.mapSize.set(2048, 2048);
key.shadow.camera.left = -3; key.shadow.camera.right = 3;
key.shadow.camera.top = 3; key.shadow.camera.bottom = -3;
key.shadow.camera.near = 0.5; key.shadow.camera.far = 15;
key.shadow.bias = -0.0005;
key.shadow.normalBias = 0.02;
scene.add(key, key.target);
const rim = new THREE.DirectionalLight(0x6fb8ff, 1.4);
rim.position.set(-3, 3, -4);
scene.add(rim);

// ---------------------------------------------------------------- stage: floor, grid, beat and bar rings
function floorTexture() {
  const c = document.createElement('canvas');
  c.width = c.height = 512;
  const g = c.getContext('2d');
  const grad = g.createRadialGradient(256, 256, 10, 256, 256, 256);
  grad.addColorStop(0, '#3a4452'); grad.addColorStop(0.45, '#222a34'); grad.addColorStop(1, '#0b0f14');
  g.fillStyle = grad;
  g.fillRect(0, 0, 512, 512);
  const tex = new THREE.CanvasTexture(c);
  tex.colorSpace = THREE.SRGBColorSpace;
  return tex;
}
const floorMat = new THREE.MeshStandardMaterial({ map: floorTexture(), roughness: 0.85, metalness: 0.05,
                                                  emissive: 0x2a1f40, emissiveIntensity: 0 });
const floor = new THREE.Mesh(new THREE.CircleGeometry(12, 96), floorMat);
floor.rotation.x = -Math.PI / 2;
floor.receiveShadow = true;
scene.add(floor);
const grid = new THREE.GridHelper(24, 48, 0x3b4a5a, 0x1f2832);
grid.material.transparent = true;
grid.material.opacity = 0.35;
grid.position.y = 0.001;
scene.add(grid);

function flatRing(inner, outer, color, opacity, thetaStart = 0, thetaLength = Math.PI * 2) {
  const mat = new THREE.MeshBasicMaterial({ color, transparent: true, opacity, depthWrite: false,
                                            side: THREE.DoubleSide, blending: THREE.AdditiveBlending });
  const m = new THREE.Mesh(new THREE.RingGeometry(inner, outer, 96, 1, thetaStart, thetaLength), mat);
  m.rotation.x = -Math.PI / 2;
  m.position.y = 0.004;
  return m;
}

// ---------------------------------------------------------------- avatars (capsule mannequins)
const UP = new THREE.Vector3(0, 1, 0);
const va = new THREE.Vector3(), vb = new THREE.Vector3(), dir = new THREE.Vector3();
const avatars = new Map();

function makeAvatar(id) {
  const color = PALETTE[id % PALETTE.length];
  const skin = new THREE.MeshStandardMaterial({ color, roughness: 0.45, metalness: 0.05 });
  const jointMat = new THREE.MeshStandardMaterial({ color: new THREE.Color(color).multiplyScalar(0.55),
                                                    roughness: 0.5, metalness: 0.1 });
  const group = new THREE.Group();
  const bones = [];
  for (let j = 1; j < N; j++) {
    if (!RADIUS[j]) { bones.push(null); continue; }
    const m = new THREE.Mesh(new THREE.CapsuleGeometry(RADIUS[j], 1, 6, 16), skin);
    m.castShadow = true;
    m.userData = { j, length: 1 };
    group.add(m);
    bones.push(m);
  }
  const joints = [];  // knees, elbows, wrists, ankles: a darker ball, like a wooden mannequin
  for (const j of [4, 5, 7, 8, 18, 19, 20, 21, 16, 17]) {
    const m = new THREE.Mesh(new THREE.SphereGeometry(RADIUS[j] * 1.08, 16, 12), jointMat);
    m.castShadow = true;
    m.userData = { j };
    group.add(m);
    joints.push(m);
  }
  const head = new THREE.Mesh(new THREE.SphereGeometry(1, 32, 24), skin);
  head.scale.set(0.095, 0.118, 0.105);
  head.castShadow = true;
  group.add(head);
  const ring = flatRing(0.55, 0.6, 0xffcc44, 0);
  const arcs = [];
  for (let i = 0; i < BEATS_PER_BAR; i++) {  // the bar: one arc per beat, clockwise from the front
    const start = Math.PI / 2 - (i + 1) * (2 * Math.PI / BEATS_PER_BAR) + 0.06;
    arcs.push(flatRing(0.72, 0.79, 0x46d3ff, 0.12, start, 2 * Math.PI / BEATS_PER_BAR - 0.12));
  }
  scene.add(group, ring, ...arcs);
  const a = { id, group, bones, joints, head, ring, arcs, p: new Float32Array(N * 3), root: [0, 0.9, 0],
              seen: performance.now(), beatAt: -1e9, barAt: -1e9, lastPhase: -1, lastBar: -1, beatInBar: -1,
              bars: 0, tempo: 0, hasFrame: false };
  avatars.set(id, a);
  return a;
}

function removeAvatar(a) {
  scene.remove(a.group, a.ring, ...a.arcs);
  a.group.traverse((o) => { if (o.geometry) o.geometry.dispose(); });
  avatars.delete(a.id);
}

function poseAvatar(a, now) {
  const p = a.p;
  for (const m of a.bones) {
    if (!m) continue;
    const j = m.userData.j, k = PARENTS[j];
    va.set(p[3 * k], p[3 * k + 1], p[3 * k + 2]);
    vb.set(p[3 * j], p[3 * j + 1], p[3 * j + 2]);
    dir.subVectors(vb, va);
    const len = dir.length();
    if (len < 1e-5) { m.visible = false; continue; }
    m.visible = true;
    if (Math.abs(len - m.userData.length) > 0.02 * len) {  // bone length known: size the capsule once
      m.geometry.dispose();
      m.geometry = new THREE.CapsuleGeometry(RADIUS[j], len, 6, 16);
      m.userData.length = len;
    }
    m.position.addVectors(va, vb).multiplyScalar(0.5);
    m.quaternion.setFromUnitVectors(UP, dir.divideScalar(len));
  }
  for (const m of a.joints) {
    const j = m.userData.j;
    m.position.set(p[3 * j], p[3 * j + 1], p[3 * j + 2]);
  }
  // head: an ellipsoid above the head joint, along the neck -> head direction
  va.set(p[36], p[37], p[38]);
  vb.set(p[3 * HEAD], p[3 * HEAD + 1], p[3 * HEAD + 2]);
  dir.subVectors(vb, va).normalize();
  a.head.position.copy(vb).addScaledVector(dir, 0.07);
  a.head.quaternion.setFromUnitVectors(UP, dir);
  // stage marks under the dancer
  const x = a.root[0], z = a.root[2];
  const beatAge = now - a.beatAt, barAge = now - a.barAt;
  const pulse = Math.exp(-beatAge / 180);
  a.ring.position.set(x, 0.004, z);
  a.ring.scale.setScalar(1 + 0.6 * (1 - Math.exp(-beatAge / 250)));
  a.ring.material.opacity = 0.85 * pulse;
  a.arcs.forEach((arc, i) => {
    arc.position.set(x, 0.004, z);
    const on = i === a.beatInBar;
    arc.material.color.setHex(i === 0 && on ? 0xff5fa2 : 0x46d3ff);
    arc.material.opacity = a.beatInBar < 0 ? 0.06 : on ? 0.55 + 0.4 * pulse : 0.1 + 0.5 * Math.exp(-barAge / 300);
  });
}

// ---------------------------------------------------------------- stream state
const state = { frames: 0, fpsT0: performance.now(), fpsN: 0, flash: 0, bars: 0, ws: null, nextId: 1,
                status: {}, source: null, avatars: 0, clean: false, lastTempo: 0 };
window.opendanceViewer = state; // for tests and the console

function applyFrame(f) {
  const id = f.avatar || 0;
  const a = avatars.get(id) || makeAvatar(id);
  const now = performance.now();
  a.seen = now;
  a.hasFrame = true;
  a.p.set(f.joints);
  a.root = f.root;
  a.tempo = f.tempo_bpm;
  if (f.tempo_bpm > 0 && a.lastPhase >= 0 && f.beat_phase < a.lastPhase - 0.5) a.beatAt = now; // wrapped: a beat
  a.lastPhase = f.beat_phase;
  const down = f.downbeat_phase;
  if (down >= 0 && down < 1) {
    if (a.lastBar >= 0 && down < a.lastBar - 0.5) { a.barAt = now; a.bars += 1; }
    a.lastBar = down;
    a.beatInBar = Math.min(BEATS_PER_BAR - 1, Math.floor(down * BEATS_PER_BAR));
  } else {
    a.lastBar = -1;
    a.beatInBar = -1;
  }
  if (id !== 0 && avatars.has(0)) return;  // the panel follows avatar 0
  state.frames += 1;
  state.fpsN += 1;
  state.bars = a.bars;
  setText(ui.count, String(state.frames));
  ui.count.dataset.frames = String(state.frames);
  setText(ui.tempo, f.tempo_bpm > 0 ? f.tempo_bpm.toFixed(1) : '-');
  setText(ui.energy, f.energy.toFixed(2));
  ui.beat.classList.toggle('on', f.tempo_bpm > 0 && f.beat_phase < 0.15);
  setText(ui.bar, a.beatInBar < 0 ? '-' : `${a.bars + 1}.${a.beatInBar + 1}`);
  ui.pips.forEach((pip, i) => {
    pip.classList.toggle('on', i === a.beatInBar);
    pip.classList.toggle('down', i === 0);
  });
  if (f.source !== undefined) state.source = f.source;
  if (f.beat_confidence !== undefined && state.status.beat_confidence === undefined) showLock(f.beat_confidence);
  showSource();
}

function decodeBinary(buf) {
  const dv = new DataView(buf);
  if ((buf.byteLength !== FRAME_BYTES && buf.byteLength !== FRAME_BYTES + 4) || dv.getUint32(0, true) !== MAGIC) {
    return null;
  }
  return {
    frame: dv.getUint32(8, true), fps: dv.getFloat32(12, true), time_s: dv.getFloat64(16, true),
    audio_time_s: dv.getFloat64(24, true), beat_phase: dv.getFloat32(32, true), tempo_bpm: dv.getFloat32(36, true),
    beat_confidence: dv.getFloat32(40, true), downbeat_phase: dv.getFloat32(44, true), energy: dv.getFloat32(48, true),
    root: [dv.getFloat32(52, true), dv.getFloat32(56, true), dv.getFloat32(60, true)],
    joints: new Float32Array(buf, JOINTS_OFFSET, N * 3),
    avatar: buf.byteLength > FRAME_BYTES ? dv.getUint32(FRAME_BYTES, true) : 0,
  };
}

function showLock(conf) {
  if (typeof conf !== 'number') { setText(ui.lock, '-'); return; }
  const pct = Math.round(100 * Math.max(0, Math.min(1, conf)));
  setText(ui.lock, conf >= 0.5 ? 'locked' : 'searching');
  ui.lock.title = `beat confidence ${pct}%`;
  ui.lockBar.style.width = pct + '%';
  ui.lockBar.style.background = conf >= 0.5 ? '#7ee29d' : '#ffb86b';
}

function showSource() {
  // JSON frames carry their source; binary frames do not, so the server puts it in status.
  const src = state.source ?? state.status.source ?? state.status.mode;
  setText(ui.source, src ? String(src) : '-');
}

function showStatus(s) {
  state.status = s;
  if (typeof s.beat_confidence === 'number') showLock(s.beat_confidence);
  const lead = s.lead_ms;
  setText(ui.lead, typeof lead === 'number' ? `${Math.round(lead)} ms` : '-');
  ui.lead.classList.toggle('warn', typeof lead === 'number' && lead < 150);
  const steps = s.steps ?? (s.controls ? s.controls.steps : undefined);
  setText(ui.steps, steps === undefined || steps === null ? '-' : String(steps));
  const late = s.chunks && typeof s.chunks === 'object' ? (s.chunks.missed ?? 0) : undefined;
  setText(ui.late, late === undefined ? '-' : String(late));
  ui.late.classList.toggle('warn', late > 0);
  setText(ui.dropped, typeof s.dropped_frames === 'number' ? String(s.dropped_frames) : '-');
  if (typeof s.fps === 'number' && state.fpsN === 0) setText(ui.fps, s.fps.toFixed(0));
  showSource();
  if (s.controls) showControls(s.controls);
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
  else if (msg.type === 'status') showStatus(msg);
  else if (msg.type === 'hello') { if (typeof msg.fps === 'number') setText(ui.fps, msg.fps.toFixed(0)); }
  else if (msg.type === 'ack') { ui.reply.className = ''; ui.reply.textContent = 'applied ' + JSON.stringify(msg.applied); }
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
  const q = new URLSearchParams({ format: page.get('format') || 'binary' });
  if (page.get('token')) q.set('token', page.get('token'));
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${proto}://${location.host}/ws?${q}`);
  ws.binaryType = 'arraybuffer';
  ws.onopen = () => { ui.conn.textContent = 'connected'; ui.conn.className = 'pill ok'; };
  ws.onmessage = onMessage;
  ws.onclose = () => { ui.conn.textContent = 'disconnected'; ui.conn.className = 'pill bad'; setTimeout(connect, 1000); };
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

// ---------------------------------------------------------------- clean mode, full screen, orbit
function setClean(on) {
  state.clean = on;
  document.body.classList.toggle('clean', on);
}
function toggleFull() {
  if (document.fullscreenElement) document.exitFullscreen();
  else document.documentElement.requestFullscreen?.().catch(() => {});
}
function toggleOrbit() {
  controls.autoRotate = !controls.autoRotate;
  el('btn-orbit').classList.toggle('active', controls.autoRotate);
}
setClean(page.get('clean') === '1');
el('btn-orbit').classList.toggle('active', controls.autoRotate);
el('btn-clean').addEventListener('click', () => setClean(true));
el('btn-full').addEventListener('click', toggleFull);
el('btn-orbit').addEventListener('click', toggleOrbit);
window.addEventListener('keydown', (ev) => {
  if (ev.target instanceof HTMLInputElement || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const k = ev.key.toLowerCase();
  if (k === 'c' || (k === 'escape' && state.clean)) setClean(!state.clean);
  else if (k === 'f') toggleFull();
  else if (k === 'o') toggleOrbit();
});

function resize() {
  const w = window.innerWidth, h = window.innerHeight;
  if (renderer) renderer.setSize(w, h);
  camera.aspect = w / h;
  camera.updateProjectionMatrix();
}
window.addEventListener('resize', resize);
resize();

// ---------------------------------------------------------------- render loop
const centre = new THREE.Vector3();
function render() {
  const now = performance.now();
  centre.set(0, 0, 0);
  let n = 0;
  for (const a of [...avatars.values()]) {
    if (now - a.seen > STALE_MS && avatars.size > 1) { removeAvatar(a); continue; }
    if (!a.hasFrame) continue;
    poseAvatar(a, now);
    centre.x += a.root[0]; centre.z += a.root[2]; n += 1;
  }
  if (n) centre.divideScalar(n);
  state.avatars = n;
  setText(ui.avatars, String(n));
  // keep the camera and the key light's shadow on the dancers, smoothly
  controls.target.x += (centre.x - controls.target.x) * 0.05;
  controls.target.z += (centre.z - controls.target.z) * 0.05;
  controls.update();
  key.target.position.set(controls.target.x, 0, controls.target.z);
  key.position.set(controls.target.x + 2.5, 5, controls.target.z + 3.5);
  const a0 = avatars.get(0) || avatars.values().next().value;
  state.flash = a0 ? Math.exp(-(now - a0.beatAt) / 120) : 0; // 120 ms decay after each beat
  floorMat.emissiveIntensity = a0 ? 0.9 * Math.exp(-(now - a0.barAt) / 350) + 0.35 * state.flash : 0;
  if (now - state.fpsT0 > 2000) {  // frames received per second, over 2 s
    setText(ui.fps, (1000 * state.fpsN / (now - state.fpsT0)).toFixed(1));
    state.fpsT0 = now; state.fpsN = 0;
  }
  if (renderer) renderer.render(scene, camera);
  requestAnimationFrame(render);
}
requestAnimationFrame(render);
