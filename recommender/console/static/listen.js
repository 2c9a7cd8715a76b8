// Listen page: record a clip with MediaRecorder (WebM/Opus, else Ogg/Opus, else MP4/AAC, as the browser offers;
// Web Audio -> 16-bit PCM WAV only where MediaRecorder is missing or offers none of these) or pick a file,
// POST it to /v1/recommendations, show the emotion and the playlist, and send pick / skip / abandon events.
// The recorder used and the uploaded type are left on the record button (data-recorder, data-mime) for tests.
// The listener id and the listener token (when the server issues one) are kept in localStorage; the token is
// sent as X-Listener-Token on every recommendation and session request. Session ids are treated as opaque.
(function () {
  "use strict";
  const MAX_S = 8;
  const TARGET_SR = 16000;
  const $ = (id) => document.getElementById(id);
  const store = {
    get listener() { return localStorage.getItem("musicrec.listener") || ""; },
    set listener(v) { localStorage.setItem("musicrec.listener", v); },
    token(listener) { return localStorage.getItem("musicrec.token." + listener) || ""; },
    setToken(listener, t) { localStorage.setItem("musicrec.token." + listener, t); },
  };
  let lastClip = null;      // {blob, name}
  let sessionId = null;     // opaque
  let recorder = null;      // {stop, stream, started, timer, ticker}
  // MediaRecorder types in order of preference, with the file extension the upload gets.
  const RECORDER_TYPES = [
    ["audio/webm;codecs=opus", "webm", "WebM/Opus"],
    ["audio/ogg;codecs=opus", "ogg", "Ogg/Opus"],
    ["audio/mp4", "m4a", "MP4/AAC"],
  ];

  function setStatus(text, isError) {
    const el = $("status");
    el.textContent = text;
    el.classList.toggle("error", !!isError);
  }

  function listener() {
    let id = $("listener").value.trim();
    if (!id) {
      id = "listener-" + Math.random().toString(36).slice(2, 8);
      $("listener").value = id;
    }
    store.listener = id;
    return id;
  }

  function headers(extra) {
    const h = Object.assign({}, extra || {});
    const token = store.token(listener());
    if (token) h["X-Listener-Token"] = token;
    return h;
  }

  async function errorText(resp) {
    try {
      const body = await resp.json();
      if (body && body.error) return body.error.message + " (" + resp.status + ")";
      if (body && body.detail) return JSON.stringify(body.detail) + " (" + resp.status + ")";
    } catch (e) { /* not JSON */ }
    return "HTTP " + resp.status;
  }

  // ---- WAV encoding (fallback recorder only) -----------------------------------------------------------
  function downsample(samples, fromRate, toRate) {
    if (fromRate <= toRate) return samples;
    const ratio = fromRate / toRate;
    const out = new Float32Array(Math.floor(samples.length / ratio));
    for (let i = 0; i < out.length; i++) {      // average the input samples that fall into each output sample
      const a = Math.floor(i * ratio), b = Math.min(samples.length, Math.floor((i + 1) * ratio));
      let sum = 0;
      for (let j = a; j < b; j++) sum += samples[j];
      out[i] = sum / Math.max(1, b - a);
    }
    return out;
  }

  function wavBlob(samples, rate) {
    const buf = new ArrayBuffer(44 + samples.length * 2);
    const v = new DataView(buf);
    const str = (o, s) => { for (let i = 0; i < s.length; i++) v.setUint8(o + i, s.charCodeAt(i)); };
    str(0, "RIFF"); v.setUint32(4, 36 + samples.length * 2, true); str(8, "WAVE");
    str(12, "fmt "); v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true);
    v.setUint32(24, rate, true); v.setUint32(28, rate * 2, true); v.setUint16(32, 2, true); v.setUint16(34, 16, true);
    str(36, "data"); v.setUint32(40, samples.length * 2, true);
    for (let i = 0; i < samples.length; i++) {
      const s = Math.max(-1, Math.min(1, samples[i]));
      v.setInt16(44 + i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
    }
    return new Blob([buf], { type: "audio/wav" });
  }

  // ---- recording ---------------------------------------------------------------------------------------
  function recorderType() {
    if (typeof window.MediaRecorder !== "function" || typeof MediaRecorder.isTypeSupported !== "function") return null;
    return RECORDER_TYPES.find(([mime]) => MediaRecorder.isTypeSupported(mime)) || null;
  }

  function micError(e) {
    const name = e && e.name;
    if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") {
      return "The microphone was refused. Allow it for this site in the browser (the icon in the address bar) and press Record again, or choose a clip below.";
    }
    if (name === "NotFoundError" || name === "DevicesNotFoundError") return "No microphone was found. Connect one, or choose a clip below.";
    if (name === "NotReadableError") return "The microphone is busy or cannot be read (another program may use it). Choose a clip below instead.";
    return "Could not open the microphone: " + ((e && e.message) || name || "unknown error") + ".";
  }

  function showTime() {
    if (!recorder) return;
    $("rec-time").textContent = ((Date.now() - recorder.started) / 1000).toFixed(1) + " s / " + MAX_S + " s";
  }

  function recordingUi(on) {
    $("record").textContent = on ? "■ Stop" : "● Record";
    $("record").setAttribute("aria-pressed", on ? "true" : "false");
    $("record").classList.toggle("recording", on);
    $("rec-time").hidden = !on;
    if (!on) $("rec-time").textContent = "";
  }

  async function startRecording() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      setStatus("This browser cannot record here (a microphone needs https or localhost). Choose a clip instead.", true);
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false } });
    } catch (e) {
      setStatus(micError(e), true);
      return;
    }
    const type = recorderType();
    try {
      recorder = type ? mediaRecorder(stream, type) : await wavRecorder(stream);
    } catch (e) {
      stream.getTracks().forEach((t) => t.stop());
      setStatus("Could not start recording: " + e.message, true);
      return;
    }
    recorder.started = Date.now();
    recorder.timer = setTimeout(stopRecording, MAX_S * 1000);
    recorder.ticker = setInterval(showTime, 100);
    $("record").dataset.recorder = type ? "mediarecorder" : "wav";
    recordingUi(true);
    showTime();
    setStatus("Recording… speak now.");
  }

  // MediaRecorder: the browser encodes (Opus in WebM or Ogg, or AAC in MP4); the server decodes these formats.
  function mediaRecorder(stream, [mime, ext, label]) {
    const rec = new MediaRecorder(stream, { mimeType: mime });
    const chunks = [];
    rec.ondataavailable = (ev) => { if (ev.data && ev.data.size) chunks.push(ev.data); };
    rec.start(250);
    return {
      stream,
      stop: () => new Promise((resolve, reject) => {
        rec.onstop = () => {
          const type = rec.mimeType || mime;
          resolve({ blob: new Blob(chunks, { type }), name: "recording." + ext, label });
        };
        rec.onerror = (ev) => reject(ev.error || new Error("the recorder failed"));
        rec.stop();
      }),
    };
  }

  // Fallback where MediaRecorder is missing or offers none of RECORDER_TYPES: Web Audio samples -> WAV at 16 kHz.
  async function wavRecorder(stream) {
    const ctx = new (window.AudioContext || window.webkitAudioContext)();
    await ctx.resume();
    const source = ctx.createMediaStreamSource(stream);
    const node = ctx.createScriptProcessor(4096, 1, 1);
    const mute = ctx.createGain();
    mute.gain.value = 0;
    const chunks = [];
    node.onaudioprocess = (ev) => chunks.push(new Float32Array(ev.inputBuffer.getChannelData(0)));
    source.connect(node); node.connect(mute); mute.connect(ctx.destination);
    return {
      stream,
      stop: async () => {
        source.disconnect(); node.disconnect();
        const rate = ctx.sampleRate;
        await ctx.close();
        const n = chunks.reduce((a, c) => a + c.length, 0);
        const all = new Float32Array(n);
        let o = 0;
        for (const c of chunks) { all.set(c, o); o += c.length; }
        const pcm = downsample(all, rate, TARGET_SR);
        return { blob: wavBlob(pcm, Math.min(rate, TARGET_SR)), name: "recording.wav", label: "WAV" };
      },
    };
  }

  async function stopRecording() {
    if (!recorder) return;
    const r = recorder;
    recorder = null;
    clearTimeout(r.timer);
    clearInterval(r.ticker);
    const seconds = (Date.now() - r.started) / 1000;
    recordingUi(false);
    let clip;
    try {
      clip = await r.stop();
    } catch (e) {
      setStatus("Recording failed: " + e.message, true);
      return;
    } finally {
      r.stream.getTracks().forEach((t) => t.stop());
    }
    lastClip = { blob: clip.blob, name: clip.name };
    $("record").dataset.mime = clip.blob.type;
    setStatus("Recorded " + seconds.toFixed(1) + " s (" + clip.label + "). Listening…");
    await recommend();
  }

  // ---- API calls ---------------------------------------------------------------------------------------
  async function recommend() {
    if (!lastClip) return;
    const who = listener();
    const form = new FormData();
    form.append("audio", lastClip.blob, lastClip.name);
    form.append("listener", who);
    setStatus("Listening to your clip…");
    document.body.setAttribute("aria-busy", "true");
    try {
      const resp = await fetch("/v1/recommendations", { method: "POST", body: form, headers: headers() });
      if (!resp.ok) { setStatus("The server could not use this clip: " + (await errorText(resp)), true); return; }
      const body = await resp.json();
      if (body.listener_token) store.setToken(who, body.listener_token);
      sessionId = String(body.session_id);
      show(body);
      $("again").disabled = false;
      setStatus("Here is your playlist (step " + body.step + ").");
    } catch (e) {
      setStatus("Request failed: " + e.message, true);
    } finally {
      document.body.removeAttribute("aria-busy");
    }
  }

  async function sendEvent(kind, songId, button) {
    if (sessionId === null) return;
    const body = { event: kind };
    if (songId !== undefined) body.song_id = songId;
    const resp = await fetch("/v1/sessions/" + encodeURIComponent(sessionId) + "/events", {
      method: "POST", body: JSON.stringify(body), headers: headers({ "Content-Type": "application/json" }),
    });
    if (!resp.ok) { setStatus("Could not " + kind + ": " + (await errorText(resp)), true); return null; }
    const out = await resp.json();
    if (button) {
      const li = button.closest("li");
      li.dataset.event = kind;
      li.querySelectorAll("button").forEach((b) => { b.disabled = true; });
      button.classList.add("chosen");
    }
    if (kind === "abandon") {
      setStatus("Session abandoned. Record again to start afresh.");
      sessionId = null;
      $("session-info").textContent = "Session abandoned.";
    } else {
      const prefs = (out.preferred_topics || []).join(", ");
      setStatus((kind === "pick" ? "Picked" : "Skipped") + ". " + (prefs ? "Preferred topics now: " + prefs + ". " : "") + "Ask again to hear more.");
    }
    return out;
  }

  // ---- rendering ---------------------------------------------------------------------------------------
  function show(body) {
    $("result").hidden = false;
    $("emotion").textContent = body.emotion;
    $("emotion").dataset.emotion = body.emotion;
    const bars = $("probabilities");
    bars.replaceChildren();
    Object.entries(body.probabilities).sort((a, b) => b[1] - a[1]).forEach(([name, p]) => {
      const row = document.createElement("div");
      row.className = "bar-row";
      row.setAttribute("role", "listitem");
      const pct = Math.round(p * 100);
      row.innerHTML = '<span class="bar-label"></span><span class="bar" aria-hidden="true"><span class="fill"></span></span><span class="bar-value"></span>';
      row.querySelector(".bar-label").textContent = name;
      row.querySelector(".fill").style.width = pct + "%";
      row.querySelector(".fill").dataset.emotion = name;
      row.querySelector(".bar-value").textContent = pct + "%";
      row.setAttribute("aria-label", name + " " + pct + " percent");
      bars.appendChild(row);
    });
    const prefs = body.preferred_topics && body.preferred_topics.length ? " Preferred topics: " + body.preferred_topics.join(", ") + "." : "";
    $("session-info").textContent = "Session " + body.session_id + ", step " + body.step + "." + prefs + (body.exhausted ? " No unheard songs left in your topics." : "");
    const list = $("playlist");
    list.replaceChildren();
    body.playlist.forEach((song) => {
      const li = document.createElement("li");
      li.dataset.songId = song.id;
      li.dataset.topicId = song.topic_id === null || song.topic_id === undefined ? "" : song.topic_id;
      const title = document.createElement("div");
      title.className = "song-title";
      title.textContent = song.title + (song.artist ? " — " + song.artist : "");
      const meta = document.createElement("div");
      meta.className = "hint";
      const topic = document.createElement("a");
      topic.href = "/topics?emotion=" + encodeURIComponent(body.emotion) + "#topic-id-" + song.topic_id;
      topic.textContent = "topic #" + song.topic_id;
      meta.append(topic, document.createTextNode(song.duration_s ? " · " + Math.round(song.duration_s) + " s" : ""));
      const audio = document.createElement("audio");
      audio.controls = true;
      audio.preload = "none";
      audio.src = "/v1/songs/" + song.id + "/audio";
      audio.setAttribute("aria-label", "Play " + song.title);
      const actions = document.createElement("div");
      actions.className = "row";
      [["pick", "♥ Pick"], ["skip", "Skip"]].forEach(([kind, text]) => {
        const b = document.createElement("button");
        b.type = "button";
        b.className = kind;
        b.textContent = text;
        b.setAttribute("aria-label", (kind === "pick" ? "Pick " : "Skip ") + song.title);
        b.addEventListener("click", () => sendEvent(kind, song.id, b));
        actions.appendChild(b);
      });
      li.append(title, meta, audio, actions);
      list.appendChild(li);
    });
  }

  // ---- wiring ------------------------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", () => {
    $("max-s").textContent = MAX_S;
    $("listener").value = store.listener;
    $("listener").addEventListener("change", () => { sessionId = null; listener(); });
    $("record").addEventListener("click", () => (recorder ? stopRecording() : startRecording()));
    $("again").addEventListener("click", recommend);
    $("abandon").addEventListener("click", () => sendEvent("abandon"));
    $("upload").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const file = $("clip-file").files[0];
      if (!file) { setStatus("Choose a clip first.", true); return; }
      lastClip = { blob: file, name: file.name };
      recommend();
    });
  });
})();
