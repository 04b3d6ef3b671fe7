// Soundstage frontend extension: socket colours, audio players and upload buttons on the pack's audio
// nodes (core's conventions), and text results shown on the node.
import { app } from "../../scripts/app.js";
import { ComfyWidgets } from "../../scripts/widgets.js";
import { PALETTE, colourFor } from "./colours.js";

// ---------------------------------------------------------------- link and slot colours
// The frontend's palette loader assigns "" to every registered type without a palette entry, after
// extensions ran. Our colour is kept behind a setter that only a real palette colour can replace.
function keepColour(table, type, colour) {
  if (!table) return;
  const own = Object.getOwnPropertyDescriptor(table, type);
  if (own?.set?.soundstage) return;
  let value = colour;
  const set = (v) => { if (v) value = v; };
  set.soundstage = true;
  Object.defineProperty(table, type, { get: () => value, set, enumerable: true, configurable: true });
}

// Vue-nodes mode reads --color-datatype-<TYPE>; the palette loader removes inline ones, a stylesheet stays.
const cssRules = [];
function paint(type) {
  const colour = colourFor(type);
  keepColour(app.canvas?.default_connection_color_byType, type, colour);
  keepColour(globalThis.LGraphCanvas?.link_type_colors, type, colour);
  cssRules.push(`--color-datatype-${type}: ${colour};`);
}

function installCss() {
  const style = document.createElement("style");
  style.id = "soundstage-datatype-colours";
  style.textContent = `:root { ${cssRules.join(" ")} }`;
  document.head.appendChild(style);
}

// ---------------------------------------------------------------- audio players and upload
// Core adds its player (AUDIO_UI) to LoadAudio/SaveAudio/PreviewAudio by class name and its upload button
// to an input named "audio"; ours name it "file", so the upload button is core's, pointed at our widget.
function addAudioWidgets(nodeType, nodeData) {
  const required = nodeData.input?.required;
  if (!required) return;
  const isLoader = required.file?.[1]?.audio_upload === true;
  const isOutput = nodeData.output_node && nodeData.input_order?.required?.[0] === "audio"
    && (nodeData.output ?? []).length === 0;
  if (!isLoader && !isOutput) return;
  required.audioUI = ["AUDIO_UI", {}];
  if (isLoader) required.upload = ["SOUNDSTAGE_AUDIOUPLOAD", {}];
}

function uploadWidget(node, inputName, inputData, appInstance) {
  const coreUpload = appInstance.widgets?.AUDIOUPLOAD;
  const file = node.widgets?.find((w) => w.name === "file");
  if (!coreUpload || !file) return { widget: node.addWidget("button", inputName, "", () => {}) };
  file.name = "audio"; // core's upload looks its combo up by this name, once, when it is created
  try {
    return coreUpload(node, inputName, inputData, appInstance);
  } finally {
    file.name = "file";
  }
}

// ---------------------------------------------------------------- text results
// Metric reports and built prompts come back as {"text": [...]} (core's PreviewText); shown read-only.
function showText(node, message) {
  const text = message?.text;
  if (!text?.length) return;
  const value = Array.isArray(text) ? text.join("\n") : String(text);
  let widget = node.widgets?.find((w) => w.name === "soundstage_result");
  if (!widget) {
    widget = ComfyWidgets.STRING(node, "soundstage_result", ["STRING", { multiline: true }], app).widget;
    widget.serialize = false;
    widget.options.serialize = false;
    if (widget.element) {
      widget.element.readOnly = true;
      widget.element.classList.add("soundstage-result");
    }
  }
  widget.value = value;
  if (widget.element) widget.element.value = value;
  // A report is a few lines: the node grows to show all of it (up to 24 lines) instead of a scrolled box.
  const lines = Math.min(value.split("\n").length, 24);
  widget.options.getMinHeight = () => 16 + 15 * lines;
  const needed = node.computeSize?.()[1];
  if (needed > node.size[1]) node.setSize?.([node.size[0], needed]);
  node.setDirtyCanvas?.(true, true);
  setTimeout(() => fitVueTextarea(node, value), 50);
}

// In Vue-nodes mode the node's DOM renders the widget as its own fixed-height textarea: let it hold every line.
function fitVueTextarea(node, value, tries = 10) {
  const root = document.querySelector(`[data-node-id="${node.id}"]`);
  const boxes = [...(root?.querySelectorAll("textarea") ?? [])].filter((t) => t.value === value);
  for (const t of boxes) t.style.minHeight = `${t.scrollHeight + 4}px`;
  if (root && !boxes.length && tries > 0) setTimeout(() => fitVueTextarea(node, value, tries - 1), 100);
}

// ---------------------------------------------------------------- per-track widgets grow with the tracks
// Mix Tracks and Mux have a row of settings per track input (gain_k/role_k, title_k/language_k); only the
// rows up to the last connected track, plus the next free one, are shown. Hidden values still serialise.
const TRACK_WIDGETS = /^(gain|role|title|language)_(\d+)$/;
function fitTrackWidgets(node) {
  let last = 0;
  for (const input of node.inputs ?? []) {
    const m = /^track_(\d+)$/.exec(input.name);
    if (m && input.link != null) last = Math.max(last, Number(m[1]));
  }
  let changed = false;
  for (const w of node.widgets ?? []) {
    const m = TRACK_WIDGETS.exec(w.name);
    if (!m) continue;
    const hidden = Number(m[2]) > last + 1;
    if (!!w.hidden !== hidden) { w.hidden = hidden; changed = true; }
  }
  if (changed) {
    node.setSize?.([node.size[0], node.computeSize()[1]]);
    node.setDirtyCanvas?.(true, true);
  }
}

function growWithTracks(nodeType) {
  const onConnectionsChange = nodeType.prototype.onConnectionsChange;
  nodeType.prototype.onConnectionsChange = function () {
    const r = onConnectionsChange?.apply(this, arguments);
    fitTrackWidgets(this);
    return r;
  };
  const onConfigure = nodeType.prototype.onConfigure;
  nodeType.prototype.onConfigure = function () {
    const r = onConfigure?.apply(this, arguments);
    requestAnimationFrame(() => fitTrackWidgets(this));
    return r;
  };
  const onNodeCreated = nodeType.prototype.onNodeCreated;
  nodeType.prototype.onNodeCreated = function () {
    const r = onNodeCreated?.apply(this, arguments);
    fitTrackWidgets(this);
    return r;
  };
}

app.registerExtension({
  name: "soundstage.editor",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    const types = [
      ...Object.values(nodeData.input?.required ?? {}).map((s) => s[0]),
      ...Object.values(nodeData.input?.optional ?? {}).map((s) => s[0]),
      ...(nodeData.output ?? []),
    ];
    for (const t of types) if (typeof t === "string" && t.startsWith("SOUNDSTAGE_")) paint(t);
    if (nodeData.python_module?.includes("soundstage") || nodeData.name?.startsWith("Soundstage")) {
      addAudioWidgets(nodeType, nodeData);
      if (["SoundstageMixTracks", "SoundstageMux"].includes(nodeData.name)) growWithTracks(nodeType);
      const onExecuted = nodeType.prototype.onExecuted;
      nodeType.prototype.onExecuted = function (message) {
        onExecuted?.apply(this, arguments);
        showText(this, message);
      };
    }
  },
  getCustomWidgets() {
    return { SOUNDSTAGE_AUDIOUPLOAD: (node, name, data, a) => uploadWidget(node, name, data, a ?? app) };
  },
  async setup() {
    for (const t of Object.keys(PALETTE)) paint(t);
    installCss();
  },
});
