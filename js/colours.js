// Link/slot colours of Soundstage's socket types: one colour family per system, so a graph shows at a
// glance which wires belong to which model. Kept free of ComfyUI imports so it can be tested alone.
export const PALETTE = {
  // DualDub: reds and oranges
  SOUNDSTAGE_DUALDUB: "#c0392b",
  SOUNDSTAGE_DUALDUB_VIDEO: "#d9534f",
  SOUNDSTAGE_DUALDUB_TEXT: "#e74c3c",
  SOUNDSTAGE_DUALDUB_SPEAKER: "#f0776b",
  SOUNDSTAGE_DUALDUB_TOKENS: "#e67e22",
  SOUNDSTAGE_WAVTOKENIZER: "#d35400",
  // AudioGen-Omni / MMAudio: blues
  SOUNDSTAGE_MMDIT: "#2471a3",
  SOUNDSTAGE_MMDIT_VISUAL_ENCODERS: "#2e86c1",
  SOUNDSTAGE_MMDIT_VISUAL_FEATURES: "#5dade2",
  SOUNDSTAGE_MMDIT_TEXT: "#3498db",
  SOUNDSTAGE_MMDIT_LYRICS: "#85c1e9",
  SOUNDSTAGE_T5: "#1f618d",
  // shared audio codecs: teals
  SOUNDSTAGE_AUDIO_VAE: "#16a085",
  SOUNDSTAGE_VOCODER: "#1abc9c",
  SOUNDSTAGE_MEL: "#48c9b0",
  // Ovi: purples
  SOUNDSTAGE_OVI_MODEL: "#7d3c98",
  SOUNDSTAGE_OVI_CONDITIONING: "#bb8fce",
  SOUNDSTAGE_UMT5: "#9b59b6",
  SOUNDSTAGE_WAN_VAE: "#a569bd",
  // JUST-DUB-IT / LTX-2: greens
  SOUNDSTAGE_LTX2: "#1e8449",
  SOUNDSTAGE_LTX2_TEXT_ENCODER: "#27ae60",
  SOUNDSTAGE_LTX2_UPSAMPLER: "#52be80",
  SOUNDSTAGE_DUB_CONTEXT: "#82e0aa",
  SOUNDSTAGE_DUB_LATENTS: "#58d68d",
  // MTV: yellows
  SOUNDSTAGE_MTV_MODEL: "#b7950b",
  SOUNDSTAGE_MTV_AUDIO_FEATURES: "#f1c40f",
  SOUNDSTAGE_MTV_CONTROL: "#f7dc6f",
  SOUNDSTAGE_COGVIDEOX_VAE: "#d4ac0d",
  // shared encoders: greys
  SOUNDSTAGE_CLIP_VISION: "#95a5a6",
};

// Types added later still get a stable colour derived from their name.
export function colourFor(type) {
  if (PALETTE[type]) return PALETTE[type];
  let h = 0;
  for (const c of type) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `hsl(${h % 360}, 55%, 55%)`;
}
