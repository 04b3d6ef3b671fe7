// Soundstage frontend extension: the pack's example workflows in the Templates dialog get their title, a
// one-line description and an order by system (then title).
//
// Why here: ComfyUI's server lists a pack's templates as bare file names (/api/workflow_templates), and the
// 1.49 frontend turns each into {title: name, description: name}; its i18n lookups for template titles and
// descriptions run for core templates only, and it reads no per-pack index. So the cards are named from each
// workflow's own `extra.soundstage` block {title, description, system}, the same block the thumbnails
// command (python -m soundstage thumbnails) draws from. Only the pack's own cards are touched.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

// The pack's folder under custom_nodes: this file is served from /extensions/<folder>/templates.js.
const FOLDER = decodeURIComponent(new URL(import.meta.url).pathname.split("/").slice(-2, -1)[0]);
const CARD = '[data-testid^="template-workflow-"]';
const PREFIX = "template-workflow-";

let loading = null;

async function loadInfo() {
  const lists = await (await api.fetchApi("/workflow_templates")).json();
  const names = lists[FOLDER] ?? [];
  const entries = await Promise.all(names.map(async (name) => {
    const url = `/workflow_templates/${encodeURIComponent(FOLDER)}/${encodeURIComponent(name)}.json`;
    const info = (await (await api.fetchApi(url)).json())?.extra?.soundstage;
    return info?.title ? [name, info] : null;
  }));
  const info = new Map(entries.filter(Boolean));
  // by system, then title; plain code-unit order of the lower-cased text, the same everywhere
  const key = ([, i]) => `${i.system ?? ""}\u0000${i.title}`.toLowerCase();
  const sorted = [...info].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  sorted.forEach(([name, i], rank) => { i.rank = rank + 1; });
  return info;
}

function templateInfo() {
  loading ??= loadInfo().catch((e) => {
    loading = null; // try again when the dialog opens next
    console.warn("soundstage: template titles", e);
    return new Map();
  });
  return loading;
}

function decorate(info) {
  for (const card of document.querySelectorAll(CARD)) {
    const name = card.dataset.testid.slice(PREFIX.length);
    const meta = info.get(name);
    const heading = card.querySelector("h3");
    if (!meta || !heading) continue;
    if (heading.textContent.trim() !== meta.title) {
      heading.textContent = meta.title;
      heading.title = meta.title;
    }
    if (!card.querySelector(".soundstage-template-description")) {
      const line = document.createElement("p");
      line.className = "soundstage-template-description";
      line.style.cssText = "margin:0;font-size:12px;line-height:1.35;opacity:0.75";
      line.textContent = meta.description;
      line.title = meta.description;
      heading.insertAdjacentElement("afterend", line);
    }
    // the card grid is a CSS grid: `order` sorts the pack's cards (after any others) without moving them
    if (card.style.order !== String(meta.rank)) card.style.order = String(meta.rank);
  }
}

let scheduled = false;
function onDomChange() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(async () => {
    scheduled = false;
    if (!document.querySelector(CARD)) return;
    decorate(await templateInfo());
  });
}

app.registerExtension({
  name: "soundstage.templates",
  async setup() {
    new MutationObserver(onDomChange).observe(document.body, { childList: true, subtree: true });
  },
});
