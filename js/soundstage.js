// Soundstage frontend extension: each of our socket types gets its own link and slot colour,
// so a DualDub token stream never looks like an Ovi latent at a glance.
import { app } from "../../scripts/app.js";

const PALETTE = {
  SOUNDSTAGE_DUALDUB_MODEL: "#c0392b",
  SOUNDSTAGE_DUALDUB_TOKENS: "#e67e22",
  SOUNDSTAGE_CODEC: "#d35400",
  SOUNDSTAGE_MMDIT_MODEL: "#2980b9",
  SOUNDSTAGE_MMDIT_CONDITIONING: "#5dade2",
  SOUNDSTAGE_AUDIO_VAE: "#16a085",
  SOUNDSTAGE_VOCODER: "#1abc9c",
  SOUNDSTAGE_OVI_MODEL: "#8e44ad",
  SOUNDSTAGE_OVI_CONDITIONING: "#bb8fce",
  SOUNDSTAGE_LTX2_MODEL: "#27ae60",
  SOUNDSTAGE_DUB_CONTEXT: "#82e0aa",
  SOUNDSTAGE_MTV_MODEL: "#f1c40f",
  SOUNDSTAGE_AUDIO_CONTROL: "#f7dc6f",
};

// Types added later still get a stable, distinct colour derived from their name.
export function colourFor(type) {
  if (PALETTE[type]) return PALETTE[type];
  let h = 0;
  for (const c of type) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `hsl(${h % 360}, 55%, 55%)`;
}

function paint(type) {
  const colour = colourFor(type);
  if (app.canvas?.default_connection_color_byType) app.canvas.default_connection_color_byType[type] = colour;
  if (globalThis.LGraphCanvas?.link_type_colors) globalThis.LGraphCanvas.link_type_colors[type] = colour;
}

app.registerExtension({
  name: "soundstage.socketColours",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    const types = [
      ...Object.values(nodeData.input?.required ?? {}).map((s) => s[0]),
      ...Object.values(nodeData.input?.optional ?? {}).map((s) => s[0]),
      ...(nodeData.output ?? []),
    ];
    for (const t of types) if (typeof t === "string" && t.startsWith("SOUNDSTAGE_")) paint(t);
  },
  async setup() {
    for (const t of Object.keys(PALETTE)) paint(t);
  },
});
