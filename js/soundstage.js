// Soundstage frontend extension: each of our socket types gets its own link and slot colour.
import { app } from "../../scripts/app.js";
import { PALETTE, colourFor } from "./colours.js";

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
