// rtvc dock: voice buttons, pitch, voice on/off, mute, monitor, noise gate, push-to-talk, meters and latency, over the
// daemon's JSON-RPC 2.0 websocket (/rpc?token=...). Plain script, no build step, no external resources.
"use strict";

(() => {
  const METER_HZ = 15;
  const METER_FLOOR_DB = -60; // the meters' left edge
  const SILENCE_DB = -119; // the daemon reports silence as -120 dBFS
  const POLL_MS = 2000; // status.get for latency, xruns and load
  const VOICES_EVERY = 8; // re-list the voices every this many polls (profiles added on disk)
  const ERROR_MS = 12000; // how long an error stays up unless dismissed
  const CLOSE_UNAUTHORIZED = 4001; // the daemon's close code for a wrong token
  const EDIT_HOLD_MS = 700; // a slider the user just moved ignores the daemon's echo for this long
  const VOICE_SETTLE_MS = 250; // after a voice switch: the engine takes the new voice at its next block
  const QUIET_MS = 5000; // nothing from the daemon this long (its meters come 15 times a second): it is not answering
  const LABELS = { pitch: "Pitch", formant: "Formant", gain_db: "Gain dB", index_rate: "Index", rms_mix: "RMS mix" };

  const $ = (id) => document.getElementById(id);
  const token = new URLSearchParams(location.search).get("token") || "";

  // what the page knows; the daemon is the truth, the page only mirrors its state
  let ws = null;
  let nextId = 1;
  const pending = new Map();
  let attempt = 0;
  let connectedOnce = false;
  let pollTimer = null;
  let polls = 0;
  let state = null; // control state: profile, voice, params, voice_on, monitor, mute, ptt, silent, loading
  let engine = null; // engine status: state, latency, xruns, timing, levels
  let voices = []; // [{name, label, voice, active, error?}]
  let scrolledTo = null; // the voice last scrolled into the voices box's view (renderVoices)
  let ranges = {}; // params.get ranges for the current voice
  let selecting = null; // a voice this page asked for, until the daemon answers
  let pttDown = false;
  let pttKey = ""; // the key that holds push-to-talk ("" for the pointer)
  let heardAt = 0; // when the daemon last sent anything (performance.now())
  let quiet = false; // the daemon has sent nothing for QUIET_MS: hung or stopped (SIGSTOP, a debugger, swap)
  let learning = false; // gate.learn asked, not answered yet
  let errorTimer = null;
  let stickyShown = ""; // the error box's text while no voice plays or the engine is in trouble, else ""
  let obsSaid = ""; // the OBS link's state and why it is down, as the message line said it last
  let obsShown = ""; // that message as shown, until the link is connected again (then taken off the message line)
  let obsWarned = ""; // the OBS link's warnings as the message line said them last

  // measurements the test reads (ms since navigation start)
  const marks = { firstState: null, connects: 0 };
  window.rtvcDock = marks;

  // ---- JSON-RPC over the websocket ----------------------------------------------------------------
  class RpcError extends Error {
    constructor(method, err) {
      let text = err && err.message ? String(err.message) : "request failed";
      const data = err && err.data;
      if (typeof data === "string" && data && !text.includes(data)) text += ": " + data;
      else if (data && typeof data === "object" && data.hint && !text.includes(data.hint)) text += ": " + data.hint;
      super(text);
      this.method = method;
      this.code = err && err.code;
    }
  }

  function call(method, params) {
    return new Promise((resolve, reject) => {
      if (!ws || ws.readyState !== WebSocket.OPEN) {
        reject(new Error("not connected to rtvc: " + method + " was not sent"));
        return;
      }
      if (quiet && method !== "status.get") {  // (a click now would run whenever it answers again, seconds late)
        reject(new Error("rtvc is not answering: " + method + " was not sent"));
        return;
      }
      const id = nextId++;
      pending.set(id, { resolve, reject, method });
      const msg = { jsonrpc: "2.0", id, method };
      if (params !== undefined) msg.params = params;
      ws.send(JSON.stringify(msg));
    });
  }

  // a user action: errors go to the page
  function act(method, params) {
    return call(method, params).catch((e) => {
      showError(e);
      throw e;
    });
  }

  function onMessage(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch (e) {
      return;
    }
    for (const m of Array.isArray(msg) ? msg : [msg]) {
      if (m && m.id !== undefined && m.id !== null && pending.has(m.id)) {
        const p = pending.get(m.id);
        pending.delete(m.id);
        if (m.error) p.reject(new RpcError(p.method, m.error));
        else p.resolve(m.result);
      } else if (m && m.method === "event" && m.params) {
        onEvent(m.params);
      }
    }
  }

  // ---- connection -------------------------------------------------------------------------------
  function connect() {
    if (!token) {
      setConn("error", "no token");
      showError("This page needs its token: open the dock URL that `rtvc token` prints (.../dock?token=...).", true);
      return;
    }
    if (!location.host) {
      setConn("error", "no daemon");
      showError("Open this page from the daemon (http://127.0.0.1:PORT/dock?token=...), not as a file.", true);
      return;
    }
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const sock = new WebSocket(proto + "//" + location.host + "/rpc?token=" + encodeURIComponent(token));
    ws = sock;
    let opened = false;
    setConn("connecting", attempt ? "reconnecting" : "connecting");
    sock.onopen = () => {
      opened = true;
      init(sock).catch((e) => {
        if (ws === sock) {
          showError(e);
          sock.close();
        }
      });
    };
    sock.onmessage = (e) => {
      if (ws !== sock) return;
      heardAt = performance.now();
      if (quiet) setQuiet(false);
      onMessage(e.data);
    };
    sock.onclose = (e) => {
      if (ws !== sock) return;
      ws = null;
      for (const p of pending.values()) p.reject(new Error("connection to rtvc closed during " + p.method));
      pending.clear();
      goOffline();
      diagnose(e, opened).then((again) => {
        if (again) reconnectLater(); // (a refused token stays refused: this URL's token cannot change)
      }, reconnectLater);
    };
    sock.onerror = () => {}; // a close event follows with what we can know
  }

  async function init(sock) {
    // subscribe first: nothing that changes between the reads below is missed
    const info = await call("server.info").catch(() => null);
    if (info && typeof info === "object") {
      const v = info.version ? " " + info.version : "";
      $("brand").title = "rtvc" + v + (info.host ? " on " + info.host : "");
    }
    const sub = await call("events.subscribe", { events: ["state", "engine", "meters"], meter_hz: METER_HZ });
    if (sub && sub.state) state = sub.state;
    const [st, vl, pr] = await Promise.all([call("status.get"), call("voices.list"), call("params.get")]);
    if (ws !== sock) return;
    attempt = 0;
    connectedOnce = true;
    marks.connects += 1;
    document.body.classList.remove("offline");
    setConn("connected", "connected");
    hideError(true);
    stickyShown = ""; // (said again, if so, from this connection's state)
    obsSaid = "";
    obsWarned = "";
    voices = voiceList(vl, []);
    applyParams(pr);
    applyStatus(st);
    if (marks.firstState === null) marks.firstState = performance.now();
    document.body.dataset.ready = "1";
    clearInterval(pollTimer);
    polls = 0;
    heardAt = performance.now();
    pollTimer = setInterval(poll, POLL_MS);
  }

  function voiceList(vl, fallback) {
    if (Array.isArray(vl)) return vl;
    return vl && Array.isArray(vl.voices) ? vl.voices : fallback;
  }

  function poll() {
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    if (!quiet && performance.now() - heardAt > QUIET_MS) setQuiet(true);
    call("status.get").then(applyStatus, () => {});
    if (++polls % VOICES_EVERY === 0) reloadVoices();
  }

  function reloadVoices() {
    call("voices.list").then((vl) => {
      voices = voiceList(vl, voices);
      renderVoices();
    }, () => {});
  }

  // the daemon sends nothing (it is stopped or hung, the connection still open): shown, and no action is sent
  function setQuiet(on) {
    if (on) pttRelease(); // (sent before: it runs when the daemon answers again, as a click made now would not)
    quiet = on;
    if (on) {
      setConn("error", "not answering");
      setFoot("rtvc has sent nothing for " + Math.round(QUIET_MS / 1000) + " s (hung or stopped?): nothing is sent " +
        "until it answers");
      document.body.classList.add("offline");
    } else {
      setConn("connected", "connected");
      setFoot("");
      document.body.classList.remove("offline");
    }
    renderAll();
  }

  function goOffline() {
    quiet = false;
    pttKey = "";
    clearInterval(pollTimer);
    pollTimer = null;
    pttDown = false;
    selecting = null;
    engine = null;
    setFoot(""); // (the engine's line was the last connection's: a refused token said nothing else there)
    delete $("foot").dataset.state;
    document.body.classList.add("offline");
    delete document.body.dataset.ready;
    setMeters(null);
    renderAll();
  }

  // why the connection closed (or never opened), in words that say what to do; whether to try again
  async function diagnose(e, opened) {
    const where = location.host;
    if (e.code === CLOSE_UNAUTHORIZED) {
      setConn("error", "wrong token");
      showError("rtvc refused this dock's token" + (e.reason ? " (" + e.reason + ")" : "") +
        ". Copy the dock URL again from `rtvc token` and set it as the dock's URL in OBS.", true);
      return false;
    }
    if (opened) {
      setConn("offline", "reconnecting");
      setFoot("rtvc closed the connection" + (e.reason ? ": " + e.reason : "") + "; reconnecting");
      return true;
    }
    // the websocket handshake failed: is the daemon there at all? (the page itself is served by it)
    let up = false;
    try {
      const r = await fetch(location.pathname + location.search, { cache: "no-store" });
      up = r.ok;
    } catch (err) {
      up = false;
    }
    if (up) {
      setConn("error", "refused");
      setFoot("rtvc at " + where + " answers but refused the websocket (too many clients, or this address is " +
        "not allowed): see the log of `rtvc serve`; retrying");
    } else {
      setConn("offline", connectedOnce ? "reconnecting" : "offline");
      setFoot("rtvc is not running at " + where + ": start it with `rtvc serve`; this dock reconnects by itself");
    }
    return true;
  }

  function reconnectLater() {
    const delay = Math.min(1000, 250 * Math.pow(2, attempt));
    attempt += 1;
    setTimeout(connect, delay);
  }

  // ---- events from the daemon -------------------------------------------------------------------
  function onEvent(ev) {
    if (ev.type === "meters") {
      setMeters(ev);
    } else if (ev.type === "state" && ev.state) {
      // a change that failed, whoever asked (an OBS scene's voice that did not load): said here too
      if (typeof ev.error === "string" && ev.error) showError(ev.error);
      const before = state;
      state = ev.state;
      const changed = Array.isArray(ev.changed) ? ev.changed : [];
      const voiceChanged = before && (before.profile !== state.profile || before.kind !== state.kind);
      if (voiceChanged || changed.includes("profile") || changed.includes("voice")) refreshVoice();
      // a profile saved (a new button, or a new label on one) or selected, or a file added to, edited in or
      // removed from profiles/: the list now, not at the next reread (16 s)
      if (changed.includes("profile") || changed.includes("profiles")) reloadVoices();
      if (changed.includes("engine")) call("status.get").then(applyStatus, () => {});
      renderAll();
    } else if (ev.type === "engine") {
      if (ev.state && typeof ev.state === "object") state = ev.state;
      if (ev.engine && typeof ev.engine === "object") engine = Object.assign({}, engine, ev.engine);
      renderAll();
      call("status.get").then(applyStatus, () => {}); // latency and the rest
    }
  }

  // the new voice's parameters and ranges. Asked again a moment later: the daemon reports a switch as soon
  // as it hands the voice to the engine, whose worker takes it at the next block edge.
  function refreshVoice() {
    // another voice: its values, not a hold on the echo of the user's last move (the sliders are no longer built
    // anew at each switch, which had dropped the hold: a step 0.3 s after a switch went on from the old voice's value)
    for (const s of sliders.values()) if (!s.dragging) s.edited = -Infinity;
    call("params.get").then(applyParams, () => {});
    setTimeout(() => {
      call("params.get").then(applyParams, () => {});
      call("status.get").then(applyStatus, () => {});
    }, VOICE_SETTLE_MS);
  }

  function applyStatus(st) {
    if (!st || typeof st !== "object") return;
    if (st.engine) engine = st.engine;
    if (st.control) state = st.control;
    renderAll();
  }

  function applyParams(pr) {
    if (!pr || typeof pr !== "object") return;
    const was = JSON.stringify(ranges);
    ranges = pr.ranges || {};
    // built again only when the parameters or their ranges change: a rebuild on every voice switch (twice) took the
    // keyboard's focus off the slider the user was on, to the page (a review)
    if (JSON.stringify(ranges) !== was || !sliders.size) buildSliders();
    if (pr.values && state) state = Object.assign({}, state, { params: pr.values });
    renderSliders(pr.values || (state && state.params) || {});
  }

  // ---- rendering ----------------------------------------------------------------------------------
  function renderAll() {
    renderVoices();
    renderToggles();
    renderSliders(state ? state.params || {} : {});
    renderEngine();
    renderLinks();
    renderSticky();
  }

  // the engine stalled or failed (its devices gone), its voice failing, or overloaded: the output is not what the
  // streamer hears in the pill's "live" (starting is on the way to running, and stopped is the daemon's own stop or
  // restart, said by the connection's state: not trouble)
  function engineTrouble() {
    return !!(engine && typeof engine.state === "string" &&
      !["running", "starting", "stopped"].includes(engine.state));
  }

  // kept on screen while it holds: rtvc serve came up with no voice (its start profile did not load), or the engine
  // is in trouble (the footer's small print alone said it, and the pill was grey)
  function renderSticky() {
    const parts = [];
    if (engineTrouble()) parts.push("engine " + engine.state + (engine.detail ? ": " + engine.detail : ""));
    else if (engine && typeof engine.unheard === "string" && engine.unheard) parts.push(engine.unheard);
    const why = state && typeof state.no_voice === "string" ? state.no_voice : "";
    if (why) parts.push(why + ". The output is silent: pick a voice.");
    const text = parts.join("\n");
    if (text && text !== stickyShown) showError(text, true);
    else if (!text && stickyShown && $("error-text").textContent === stickyShown) hideError(true);
    stickyShown = text;
  }

  // the OBS link, where the daemon has one ([obs] in its config.toml): connected, or why not
  function renderLinks() {
    const el = $("obs");
    const link = state && state.links && state.links.obs;
    if (!link || typeof link.state !== "string") {
      el.hidden = true;
      return;
    }
    el.hidden = false;
    el.dataset.state = link.state;
    el.textContent = "OBS " + link.state;
    el.title = typeof link.detail === "string" ? link.detail : "";
    // why it is down, on the message line too (the README's word; it was in the tooltip alone): once per reason
    const reason = el.title.split("; retrying in ")[0];
    const trouble = ["disconnected", "auth failed", "stopped"].includes(link.state);
    const said = trouble ? link.state + ": " + reason : "";
    if (said && said !== obsSaid) {
      obsShown = "OBS " + said + (link.state === "stopped" ? "" : " (rtvc keeps trying)");
      showError(obsShown);
    } else if (link.state === "connected" && obsShown) {
      // (it stayed up for the rest of its 12 s under "OBS connected" on the top bar)
      if (!$("error").hidden && $("error-text").textContent === obsShown) expireError();
      obsShown = "";
    }
    obsSaid = said;
    // [obs.scenes]'s problems (a scene renamed in OBS, a name OBS has not: it switches no voice), once per change
    const warnings = Array.isArray(link.warnings) ? link.warnings.filter((w) => typeof w === "string") : [];
    const warned = warnings.join("\n");
    if (warned && warned !== obsWarned && !said) {
      const more = warnings.length > 1 ? " (and " + (warnings.length - 1) + " more: rtvc ctl status)" : "";
      showError("OBS: " + warnings[0] + more);
    }
    if (!said) obsWarned = warned;
    el.title += warnings.length ? "\n" + warnings.join("\n") : "";
    if (warnings.length) el.dataset.warned = "";
    else delete el.dataset.warned;
  }

  function setConn(kind, text) {
    const el = $("conn");
    el.dataset.state = kind;
    el.textContent = text;
  }

  function setFoot(text) {
    $("foot").textContent = text || "\u00a0";
  }

  function showError(e, sticky) {
    const text = e instanceof Error ? e.message : String(e);
    $("error-text").textContent = text;
    const box = $("error");
    box.hidden = false;
    box.dataset.sticky = sticky ? "1" : "";
    clearTimeout(errorTimer);
    if (!sticky) errorTimer = setTimeout(expireError, ERROR_MS);
  }

  // an error shown for a while (or no longer true) goes; what holds (stickyShown) comes back in its place
  function expireError() {
    clearTimeout(errorTimer);
    $("error").hidden = true;
    if (stickyShown) showError(stickyShown, true); // (an error said meanwhile had taken its place)
  }

  function hideError(onlySticky) {
    const box = $("error");
    if (onlySticky && !box.dataset.sticky) return;
    box.hidden = true;
  }

  function renderVoices() {
    const box = $("voices");
    // the voice that plays though its profile's file is gone (removed or renamed since): still shown, as playing
    const playing = state && state.profile && !voices.some((v) => v.name === state.profile);
    const label = playing && typeof state.voice === "string" ? state.voice.split(": ")[0] : "";
    const shown = playing ? [...voices, { name: state.profile, label: label || state.profile, gone: true }] : voices;
    const names = shown.map((v) => v.name).join("\n");
    if (box.dataset.names !== names) {
      box.dataset.names = names;
      box.textContent = "";
      for (const v of shown) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "voice";
        b.dataset.testid = "voice-" + v.name;
        b.dataset.name = v.name;
        const label = document.createElement("span");
        label.className = "label";
        const sub = document.createElement("span");
        sub.className = "sub";
        b.append(label, sub);
        b.addEventListener("click", () => selectVoice(v.name));
        box.append(b);
      }
    }
    const online = !!(ws && ws.readyState === WebSocket.OPEN && state && !quiet);
    const loading = (state && state.loading) || selecting;
    shown.forEach((v, i) => {
      const b = box.children[i];
      const active = !!state && state.profile === v.name;
      const isLoading = loading === v.name;
      b.querySelector(".label").textContent = v.label || v.name;
      b.querySelector(".sub").textContent = v.gone ? "file removed" : v.error ? "cannot load" :
        isLoading ? "loading\u2026" : v.voice || "";
      b.title = v.gone ? v.name + ": playing; its profile's file is no longer in profiles/" :
        v.error ? v.name + ": " + v.error : (v.label && v.label !== v.name ? v.label + " \u2013 " : "") + v.name +
        " (" + (v.voice || "?") + ")" +
        (active ? ": playing; click to take back its saved settings" : "");
      b.classList.toggle("active", active);
      b.classList.toggle("loading", isLoading);
      b.classList.toggle("broken", !!v.error);
      b.dataset.active = active ? "true" : "false";
      b.setAttribute("aria-pressed", active ? "true" : "false");
      b.disabled = !online || (!!loading && !isLoading) || !!v.gone;
    });
    // the voice playing, when it changed (picked here, by an OBS scene, by rtvc ctl): into the box's view, which
    // scrolls when there are many; the user's own scrolling is left alone otherwise
    const playingNow = state ? state.profile : null;
    const act = box.querySelector(".voice.active");
    if (act && playingNow !== scrolledTo) {
      scrolledTo = playingNow;
      if (act.offsetTop < box.scrollTop) box.scrollTop = act.offsetTop;
      else if (act.offsetTop + act.offsetHeight > box.scrollTop + box.clientHeight) {
        box.scrollTop = act.offsetTop + act.offsetHeight - box.clientHeight;
      }
    }
  }

  function selectVoice(name) {
    const v = voices.find((x) => x.name === name);
    if (v && v.error) {
      showError(v.name + ": " + v.error);
      return;
    }
    // the playing voice too: the daemon loads its profile again, so its saved settings (pitch and the rest) come back
    if (!state || selecting || state.loading) return;
    selecting = name;
    renderVoices();
    renderSliders(state.params || {});
    act("voices.select", { name })
      .then((st) => {
        if (st && typeof st === "object" && st.profile) state = st;
      })
      .catch(() => {
        reloadVoices(); // the profile may have been edited since the list was read: the list says why it cannot load
      })
      .finally(() => {
        selecting = null;
        renderAll();
        refreshVoice();
      });
  }

  function renderToggles() {
    const online = !!(ws && ws.readyState === WebSocket.OPEN && state && !quiet);
    const s = state || {};
    setPressed($("voice-on"), !!s.voice_on, online);
    $("voice-on").textContent = s.voice_on === false ? "Voice off" : "Voice on";
    setPressed($("mute"), !!s.mute, online);
    $("mute").textContent = s.mute ? "Muted" : "Mute";
    setPressed($("monitor"), !!s.monitor, online);
    const gate = s.gate || {};
    setPressed($("gate"), !!gate.on, online);
    $("gate").title = gate.on
      ? "noise gate on: the output is silent while your microphone is below " + gate.threshold_db +
        " dBFS (now " + ($("gate").dataset.open === "false" ? "closed" : "open") + "); click to switch it off"
      : "noise gate off: everything your microphone hears is converted; click to switch it on";
    $("gate-threshold").textContent = gate.on ? "gate opens at " + gate.threshold_db + " dBFS" : "";
    $("gate-learn").disabled = !online || learning;

    const ptt = $("ptt");
    const held = s.ptt ? s.ptt.held || 0 : 0;
    const mode = !!(s.ptt && s.ptt.mode);
    ptt.disabled = !online;
    setPressed($("ptt-mode"), mode, online);
    ptt.setAttribute("aria-pressed", pttDown || held > 0 ? "true" : "false");
    ptt.dataset.held = String(held);
    ptt.textContent = pttDown ? "Talking\u2026" : held > 0 ? "Talking (" + held + " held)" : "Hold to talk";
    const sub = document.createElement("span");
    sub.className = "sub";
    sub.textContent = mode ? "silent unless held" : "push-to-talk mode is off";
    ptt.append(sub);

    const air = $("air");
    if (!online) {
      air.hidden = true;
    } else {
      air.hidden = false;
      const eng = engine && engine.state && engine.state !== "running" ? engine.state : null;
      // voice off: the microphone goes out as it is, the streamer's own voice (a green "live" said nothing of it)
      const own = !s.silent && s.voice_on === false;
      air.dataset.state = eng ? (engineTrouble() ? "trouble" : "engine") : s.silent ? "silent" : own ? "own" : "live";
      air.textContent = eng || (s.silent ? (s.mute ? "muted" : "silent") : own ? "own voice" : "live");
    }
  }

  function setPressed(b, on, enabled) {
    b.setAttribute("aria-pressed", on ? "true" : "false");
    b.disabled = !enabled;
  }

  function renderEngine() {
    const lat = $("latency");
    const L = engine && engine.latency;
    // (a stalled or failed engine keeps the latency its streams had: no audio flows, so there is none to show)
    const flowing = !!engine && (engine.state === "running" || engine.state === "overloaded");
    if (flowing && L && L.ms && typeof L.ms.total === "number") {
      lat.textContent = L.ms.total.toFixed(1) + " ms";
      const parts = ["device_in", "block", "converter", "prefill", "device_out"]
        .filter((k) => typeof L.ms[k] === "number")
        .map((k) => k.replace("_", " ") + " " + L.ms[k].toFixed(1));
      lat.title = "declared end-to-end latency: " + parts.join(", ") + " ms";
    } else {
      lat.textContent = "\u2013 ms";
      lat.title = engine && engine.state ? "no latency while the engine is " + engine.state
        : "declared end-to-end latency";
    }
    if (!ws || ws.readyState !== WebSocket.OPEN || !engine || quiet) return; // (the foot says why it is quiet)
    const bits = [];
    bits.push(engine.state + (engine.detail ? ": " + engine.detail : ""));
    if (engine.xruns && typeof engine.xruns.total === "number") bits.push("xruns " + engine.xruns.total);
    const t = engine.timing;
    if (flowing && t && typeof t.p50_ms === "number" && t.budget_ms > 0) {  // (no blocks run: its last p50 is old)
      bits.push("load " + Math.round((100 * t.p50_ms) / t.budget_ms) + "%"); // (the block's p50 of its duration)
    }
    if (state && state.voice) bits.push(state.voice);
    setFoot(bits.join(" \u00b7 "));
    $("foot").dataset.state = engine.state;
  }

  // ---- sliders ------------------------------------------------------------------------------------
  const sliders = new Map(); // name -> {input, output, range, busy, want, sent, edited, dragging}

  function stepFor(r) {
    if (r.type === "an integer") return 1;
    const span = r.max - r.min;
    return span <= 2 ? 0.01 : span <= 20 ? 0.1 : 0.5;
  }

  function fmt(v, step) {
    if (typeof v !== "number" || !isFinite(v)) return "\u2013";
    const d = step >= 1 ? 0 : step >= 0.1 ? 1 : 2;
    return (v > 0 && step >= 0.1 ? "+" : "") + v.toFixed(d);
  }

  function numeric(r) {
    return r && typeof r.min === "number" && typeof r.max === "number" && /number|integer/.test(r.type || "");
  }

  function buildSliders() {
    const focused = document.activeElement && document.activeElement.dataset.param; // (kept where it still is)
    for (const [name, s] of sliders) {
      if (name !== "pitch") s.row.remove();
    }
    sliders.clear();
    const more = $("more-sliders");
    more.textContent = "";
    const pitchRow = $("pitch-row");
    if (numeric(ranges.pitch)) {
      pitchRow.hidden = false;
      bindSlider("pitch", $("pitch"), $("pitch-value"), pitchRow, ranges.pitch);
    } else {
      pitchRow.hidden = true;
    }
    let extra = 0;
    for (const [name, r] of Object.entries(ranges)) {
      // (integers too: a multi-speaker RVC voice's speaker had no control here, the TUI's stepper has one)
      if (name === "pitch" || !numeric(r)) continue;
      const row = document.createElement("div");
      row.className = "slider";
      const label = document.createElement("label");
      label.textContent = LABELS[name] || name.replace(/_/g, " ");
      label.htmlFor = "param-" + name;
      const input = document.createElement("input");
      input.type = "range";
      input.id = "param-" + name;
      input.dataset.testid = "param-" + name;
      input.dataset.param = name;
      const output = document.createElement("output");
      row.append(label, input, output);
      more.append(row);
      bindSlider(name, input, output, row, r);
      extra += 1;
    }
    $("more").hidden = extra === 0;
    const again = focused && sliders.get(focused);
    if (again && document.activeElement !== again.input) again.input.focus();
  }

  function bindSlider(name, input, output, row, r) {
    const step = stepFor(r);
    input.min = String(r.min);
    input.max = String(r.max);
    input.step = String(step);
    input.title = r.help || name;
    row.title = r.help || name;
    const s = {
      input, output, row, range: r, step, busy: false, want: null, sent: null, edited: -Infinity, dragging: false,
    };
    sliders.set(name, s);
    if (input.dataset.bound) return; // the static pitch slider keeps its listeners across voices
    input.dataset.bound = "1";
    input.addEventListener("input", () => sliderMoved(name));
    input.addEventListener("change", () => sliderMoved(name));
    input.addEventListener("pointerdown", () => {
      const cur = sliders.get(name);
      if (cur) cur.dragging = true;
    });
    const up = () => {
      const cur = sliders.get(name);
      if (cur) cur.dragging = false;
    };
    input.addEventListener("pointerup", up);
    input.addEventListener("pointercancel", up);
    // (no double-click reset: it set the voice's neutral 0, not the profile's pitch, and took the streamer's own
    // pitch off air; a click on the playing voice's button brings its saved settings back)
  }

  function voiceLoading() {
    return !!(state && state.loading) || !!selecting;
  }

  function sliderMoved(name) {
    const s = sliders.get(name);
    if (!s) return;
    if (voiceLoading()) {
      renderSliders(state ? state.params || {} : {});
      return;
    }
    const v = Number(s.input.value);
    s.output.textContent = fmt(v, s.step);
    s.edited = performance.now();
    s.want = v;
    if (!s.busy) pumpSlider(name, s);
  }

  // one params.set in flight per slider; while it runs only the latest position is kept
  async function pumpSlider(name, s) {
    s.busy = true;
    try {
      while (s.want !== null) {
        const v = s.want;
        s.want = null;
        // (a key's step fires "input" then "change" with one value: sent twice, the second reached the daemon after
        // another client's voice switch had begun, and was refused on screen)
        if (v === s.sent) continue;
        try {
          const r = await call("params.set", { values: { [name]: v } });
          s.sent = v;
          const values = r && typeof r === "object" && r.values ? r.values : null;
          if (values && state) state = Object.assign({}, state, { params: values });
        } catch (e) {
          showError(e);
          s.sent = null;
          s.want = null;
          s.edited = -Infinity;
        }
      }
    } finally {
      s.busy = false;
      renderSliders(state ? state.params || {} : {});
    }
  }

  function renderSliders(values) {
    const online = !!(ws && ws.readyState === WebSocket.OPEN && state && !quiet);
    // held while a voice loads, as its buttons are (a move was refused, "change them once it is in", and snapped
    // back): not disabled, which would take the keyboard's focus off the slider the user is on
    const held = voiceLoading();
    const now = performance.now();
    for (const [name, s] of sliders) {
      s.input.disabled = !online;
      s.input.setAttribute("aria-disabled", held ? "true" : "false");
      s.row.classList.toggle("held", held);
      // (held: a move made meanwhile goes back to the daemon's value at once)
      if (s.busy || (!held && (s.dragging || now - s.edited < EDIT_HOLD_MS))) continue;
      const v = values[name];
      if (typeof v !== "number") continue;
      if (document.activeElement !== s.input || Number(s.input.value) !== v) s.input.value = String(v);
      s.sent = v; // (the daemon's value now: a move back to the value sent before is a change again)
      s.output.textContent = fmt(v, s.step);
      s.input.dataset.value = String(v);
    }
  }

  // ---- meters -------------------------------------------------------------------------------------
  const meterEls = ["in", "out"].map((k) => {
    const el = $("meter-" + k);
    return {
      key: k,
      el,
      cover: el.querySelector(".meter-cover"),
      peak: el.querySelector(".meter-peak"),
      db: el.querySelector(".meter-db"),
    };
  });

  function frac(db) {
    return Math.min(1, Math.max(0, (db - METER_FLOOR_DB) / -METER_FLOOR_DB));
  }

  function setMeters(ev) {
    if (ev && typeof ev.gate === "string") $("gate").dataset.open = ev.gate === "open" ? "true" : "false";
    for (const m of meterEls) {
      const peak = ev && typeof ev[m.key + "_peak"] === "number" ? ev[m.key + "_peak"] : -120;
      const rms = ev && typeof ev[m.key + "_rms"] === "number" ? ev[m.key + "_rms"] : -120;
      m.el.dataset.peak = String(peak);
      m.el.dataset.rms = String(rms);
      m.cover.style.width = (100 * (1 - frac(rms))).toFixed(1) + "%";
      const fp = frac(peak);
      m.peak.style.left = "calc(" + (100 * fp).toFixed(1) + "% - 2px)";
      m.peak.style.opacity = fp > 0 ? "1" : "0";
      // the output limiter at work (rtvc.limiter): the peak reads 0.0, so what it takes off is shown instead
      const limit = m.key === "out" && ev && typeof ev.limit_db === "number" && ev.limit_db < -0.05 ? ev.limit_db : 0;
      m.db.textContent = limit ? "lim " + limit.toFixed(1) : peak <= SILENCE_DB ? "\u2013" : peak.toFixed(1);
      m.db.title = limit ? "the limiter took " + (-limit).toFixed(1) + " dB off: lower the voice's gain" : "";
      m.el.dataset.limit = String(limit);
      m.el.classList.toggle("clip", peak > -0.1);
    }
  }

  // ---- controls -----------------------------------------------------------------------------------
  function toggle(id, method, field) {
    $(id).addEventListener("click", () => {
      if (!state) return;
      act(method, { on: !state[field] })
        .then((r) => {
          const on = r && typeof r === "object" ? r.on : r;
          if (typeof on === "boolean" && state) {
            state = Object.assign({}, state, { [field]: on });
            renderToggles();
          }
        })
        .catch(() => {});
    });
  }
  toggle("voice-on", "voice.set", "voice_on");
  toggle("mute", "mute.set", "mute");
  toggle("monitor", "monitor.set", "monitor");
  $("gate").addEventListener("click", () => {
    if (!state) return;
    act("gate.set", { on: !(state.gate && state.gate.on) })
      .then((r) => {
        if (r && typeof r.on === "boolean" && state) {
          state = Object.assign({}, state, { gate: r });
          renderToggles();
        }
      })
      .catch(() => {});
  });
  // the room learnt: the daemon listens for 2 s (the user quiet), then sets the threshold (gate.learn)
  $("gate-learn").addEventListener("click", () => {
    if (!state || learning) return;
    learning = true;
    const button = $("gate-learn");
    button.textContent = "Listening… be quiet";
    renderToggles();
    act("gate.learn", { seconds: 2 })
      .then((r) => {
        if (r && typeof r.on === "boolean" && state) {
          state = Object.assign({}, state, { gate: { on: r.on, threshold_db: r.threshold_db, hold_ms: r.hold_ms } });
        }
      })
      .catch(() => {})
      .finally(() => {
        learning = false;
        button.textContent = "Learn room";
        renderToggles();
      });
  });
  $("ptt-mode").addEventListener("click", () => {
    if (!state) return;
    act("ptt.mode", { on: !(state.ptt && state.ptt.mode) })
      .then((r) => {
        if (r && typeof r.on === "boolean" && state) {
          state = Object.assign({}, state, { ptt: Object.assign({}, state.ptt, { mode: r.on }) });
          renderToggles();
        }
      })
      .catch(() => {});
  });

  // push-to-talk: held while the pointer (or Space/Enter on the focused button) is down
  const ptt = $("ptt");
  function pttPress() {
    if (pttDown || !state) return;
    pttDown = true;
    renderToggles();
    act("ptt.press").catch(() => {
      pttDown = false;
      renderToggles();
    });
  }
  function pttRelease() {
    if (!pttDown) return;
    pttDown = false;
    pttKey = "";
    renderToggles();
    act("ptt.release").catch(() => {});
  }
  ptt.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    try {
      ptt.setPointerCapture(e.pointerId);
    } catch (err) {
      // no capture (synthetic events): pointerup on the button still releases
    }
    e.preventDefault();
    pttPress();
  });
  ptt.addEventListener("pointerup", pttRelease);
  ptt.addEventListener("pointercancel", pttRelease);
  ptt.addEventListener("lostpointercapture", pttRelease);
  ptt.addEventListener("keydown", (e) => {
    if ((e.key === " " || e.key === "Enter") && !e.repeat) {
      e.preventDefault();
      if (!pttDown) pttKey = e.key;
      pttPress();
    }
  });
  // the key's release lets go wherever the focus is by then (Tab, or a click on another control, while it is held:
  // the key went up elsewhere and the talk key stayed held, the voice on air), and so does the focus leaving it
  document.addEventListener("keyup", (e) => {
    if (pttKey && e.key === pttKey) {
      if (document.activeElement === ptt) e.preventDefault();
      pttRelease();
    }
  });
  ptt.addEventListener("blur", () => {
    if (pttKey) pttRelease();
  });
  ptt.addEventListener("contextmenu", (e) => e.preventDefault());
  window.addEventListener("blur", pttRelease);
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) pttRelease();
  });

  $("error-close").addEventListener("click", () => hideError(false));
  // a message below the fold of a short dock (OBS docks are often 250-400 px high) was shown where nobody saw it
  // (a review): the hint over the latency says it is there; a click brings it into view
  const hint = $("msg-hint");
  let errorSeen = true;
  const showHint = () => (hint.hidden = $("error").hidden || errorSeen);
  new IntersectionObserver((entries) => {
    for (const e of entries) errorSeen = e.isIntersecting && e.intersectionRatio > 0.5;
    showHint();
  }, { threshold: [0, 0.5, 1] }).observe($("error"));
  new MutationObserver(showHint).observe($("error"), { attributes: true, attributeFilter: ["hidden"] });
  hint.addEventListener("click", () => $("error").scrollIntoView({ block: "nearest" }));

  setMeters(null);
  renderAll();
  connect();
})();
