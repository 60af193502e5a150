/* The playground page: a Slack-like client for the local Slack stand-in.
 *
 * Two halves. The first is pure rendering: renderMrkdwn, renderText, renderBlock and
 * renderElement turn the bot's Block Kit (https://api.slack.com/reference/block-kit) into DOM
 * nodes from their arguments alone. The second is the glue: it polls
 * GET /playground/api/state, keeps what the person typed across polls, and POSTs clicks, choices
 * and submissions to /playground/api/*, which the stand-in turns into signed requests to the bot.
 *
 * Everything from the state is untrusted: it is put on the page with textContent and
 * createElement only, never as HTML.
 */
"use strict";

/* ---------------------------------------------------------------------------------------------
 * Pure rendering
 * ------------------------------------------------------------------------------------------- */

/** h("div", {class: "x", "data-testid": "y"}, child, "text", [more]) → an element. */
function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  appendAll(node, children);
  return node;
}

function appendAll(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/* The emoji the bot's messages use (shortcode → character); others stay as :shortcode:. */
const EMOJI = {
  warning: "⚠️", x: "❌", white_check_mark: "✅", hourglass: "⌛", no_entry: "⛔", lock: "🔒",
  double_vertical_bar: "⏸️", wastebasket: "🗑️", raised_hand: "✋", key: "🔑",
  hourglass_flowing_sand: "⏳", arrow_forward: "▶️", test_tube: "🧪", no_entry_sign: "🚫",
  zzz: "💤", information_source: "ℹ️", grey_question: "❔", busts_in_silhouette: "👥",
  stopwatch: "⏱️", rotating_light: "🚨", rocket: "🚀", infinity: "♾️", floppy_disk: "💾",
  alarm_clock: "⏰", wave: "👋", page_facing_up: "📄", mag: "🔍", gear: "⚙️",
  arrows_counterclockwise: "🔄", large_green_circle: "🟢", red_circle: "🔴", moneybag: "💰",
  bulb: "💡", tada: "🎉", eyes: "👀", heavy_check_mark: "✔️", clock1: "🕐", stop_button: "⏹️",
};

function emojify(text) {
  return text.replace(/:([a-z0-9_+-]+):/g, (whole, name) => EMOJI[name] || whole);
}

/* Slack's mrkdwn escapes &, < and > as entities (https://api.slack.com/reference/surfaces/formatting#escaping). */
function unescapeEntities(text) {
  return text.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

const SAFE_URL = /^(https?:|mailto:)/i;

/** The person's name for a user id, from ctx.users (and ctx.bot). */
function userName(ctx, id) {
  if (ctx.bot && ctx.bot.user_id === id) return ctx.bot.name;
  const user = (ctx.users || []).find((u) => u.id === id);
  return user ? user.real_name || user.name : id;
}

function channelName(ctx, id) {
  const channel = (ctx.channels || []).find((c) => c.id === id);
  return channel ? channel.name : id;
}

const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
  "September", "October", "November", "December"];
const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/** The calendar parts of an instant (epoch seconds) in an IANA time zone. */
function zonedParts(epoch, tz) {
  const fmt = new Intl.DateTimeFormat("en-US", {
    timeZone: tz || "UTC", year: "numeric", month: "numeric", day: "numeric",
    hour: "numeric", minute: "2-digit", second: "2-digit", hourCycle: "h23", weekday: "long",
  });
  const parts = {};
  for (const p of fmt.formatToParts(new Date(epoch * 1000))) parts[p.type] = p.value;
  return {
    year: +parts.year, month: +parts.month, day: +parts.day, hour: +parts.hour,
    minute: parts.minute, second: parts.second, weekday: parts.weekday,
  };
}

function ordinal(n) {
  const s = n % 100 >= 11 && n % 100 <= 13 ? "th" : ({ 1: "st", 2: "nd", 3: "rd" }[n % 10] || "th");
  return n + s;
}

/**
 * Formats <!date^epoch^format|fallback> as Slack does in the viewer's zone
 * (https://api.slack.com/reference/surfaces/formatting#date-formatting). now: epoch seconds of
 * the (simulated) present, for {date_pretty} and {ago}.
 */
function formatSlackDate(epoch, format, tz, now) {
  const p = zonedParts(epoch, tz);
  const hour12 = ((p.hour + 11) % 12) + 1;
  const ampm = p.hour < 12 ? "AM" : "PM";
  const monthName = MONTHS[p.month - 1];
  const dateLong = `${p.weekday}, ${monthName} ${ordinal(p.day)}, ${p.year}`;
  const date = `${monthName} ${ordinal(p.day)}, ${p.year}`;
  const dateShort = `${monthName.slice(0, 3)} ${p.day}, ${p.year}`;
  const pretty = (plain) => {
    const today = zonedParts(now, tz);
    const dayNumber = (q) => Date.UTC(q.year, q.month - 1, q.day) / 86400000;
    const diff = dayNumber(p) - dayNumber(today);
    return { 0: "today", 1: "tomorrow", "-1": "yesterday" }[diff] || plain;
  };
  const ago = () => {
    const s = Math.round(now - epoch);
    const abs = Math.abs(s);
    const [n, unit] = abs < 60 ? [abs, "second"] : abs < 3600 ? [Math.round(abs / 60), "minute"]
      : abs < 86400 ? [Math.round(abs / 3600), "hour"] : [Math.round(abs / 86400), "day"];
    const words = `${n} ${unit}${n === 1 ? "" : "s"}`;
    return s >= 0 ? `${words} ago` : `in ${words}`;
  };
  const tokens = {
    date_num: `${p.year}-${String(p.month).padStart(2, "0")}-${String(p.day).padStart(2, "0")}`,
    date, date_short: dateShort, date_long: dateLong,
    date_pretty: () => pretty(date), date_short_pretty: () => pretty(dateShort),
    date_long_pretty: () => pretty(dateLong),
    time: `${hour12}:${p.minute} ${ampm}`, time_secs: `${hour12}:${p.minute}:${p.second} ${ampm}`,
    ago,
  };
  return format.replace(/\{([a-z_]+)\}/g, (whole, name) => {
    const value = tokens[name];
    if (value === undefined) return whole;
    return typeof value === "function" ? value() : value;
  });
}

/** One <…> of mrkdwn (link, mention, special mention or date) as a node. */
function renderAngle(inner, ctx) {
  const bar = inner.indexOf("|");
  const target = bar >= 0 ? inner.slice(0, bar) : inner;
  const label = bar >= 0 ? inner.slice(bar + 1) : null;
  if (target.startsWith("@")) {
    const id = target.slice(1);
    return h("span", { class: "mention", "data-user-id": id }, "@" + (label || userName(ctx, id)));
  }
  if (target.startsWith("#")) {
    const id = target.slice(1);
    return h("span", { class: "mention", "data-channel-id": id }, "#" + (label || channelName(ctx, id)));
  }
  if (target.startsWith("!date^")) {
    const [, epoch, format, link] = target.split("^");
    const seconds = Number(epoch);
    if (!Number.isFinite(seconds) || format === undefined) return unescapeEntities(label || inner);
    const text = formatSlackDate(seconds, unescapeEntities(format), ctx.tz, ctx.now || Date.now() / 1000);
    return link && SAFE_URL.test(link)
      ? h("a", { href: link, target: "_blank", rel: "noopener noreferrer" }, text)
      : h("span", { class: "date", title: unescapeEntities(label || "") }, text);
  }
  if (target.startsWith("!subteam^")) return h("span", { class: "mention" }, unescapeEntities(label || "@group"));
  if (target.startsWith("!")) {
    return h("span", { class: "mention special" }, "@" + (label || target.slice(1)));
  }
  const url = unescapeEntities(target);
  if (SAFE_URL.test(url)) {
    return h("a", { href: url, target: "_blank", rel: "noopener noreferrer" },
      unescapeEntities(label || url));
  }
  return unescapeEntities("<" + inner + ">");
}

/* Inline mrkdwn: the first match of these, left to right, wins; bold/italic/strike nest. */
const INLINE = /<([^<>\n]+)>|`([^`\n]+)`|(^|[^\w*])\*(?=\S)([^*\n]*?\S)\*(?![\w*])|(^|[^\w_])_(?=\S)([^_\n]*?\S)_(?![\w_])|(^|[^\w~])~(?=\S)([^~\n]*?\S)~(?![\w~])/;

function renderInline(text, ctx, emoji) {
  const out = [];
  let rest = text;
  while (rest) {
    const m = INLINE.exec(rest);
    if (!m) break;
    const lead = m[3] ?? m[5] ?? m[7] ?? "";
    const before = rest.slice(0, m.index) + lead;
    if (before) out.push(plainPiece(before, emoji));
    if (m[1] !== undefined) out.push(renderAngle(m[1], ctx));
    else if (m[2] !== undefined) out.push(h("code", {}, unescapeEntities(m[2])));
    else if (m[4] !== undefined) out.push(h("b", {}, renderInline(m[4], ctx, emoji)));
    else if (m[6] !== undefined) out.push(h("i", {}, renderInline(m[6], ctx, emoji)));
    else out.push(h("s", {}, renderInline(m[8], ctx, emoji)));
    rest = rest.slice(m.index + m[0].length);
  }
  if (rest) out.push(plainPiece(rest, emoji));
  return out;
}

function plainPiece(text, emoji) {
  const plain = unescapeEntities(text);
  return emoji ? emojify(plain) : plain;
}

/**
 * mrkdwn text → a DocumentFragment: *bold*, _italic_, ~strike~, `code`, ```blocks```,
 * > quotes, <url|links>, <@U…>/<#C…> mentions, <!here>, <!date^…> in ctx.tz.
 * ctx: {users, channels, bot, tz, now}.
 */
function renderMrkdwn(text, ctx) {
  const frag = document.createDocumentFragment();
  const parts = String(text ?? "").split(/```/);
  parts.forEach((part, i) => {
    if (i % 2 === 1 && i < parts.length - 1) {
      frag.append(h("pre", { class: "code-block" }, unescapeEntities(part.replace(/^\n/, ""))));
      return;
    }
    if (i % 2 === 1) part = "```" + part; // an unclosed fence is plain text
    else if (i > 0) part = part.replace(/^\n/, ""); // the line break after a closing fence
    let quote = null;
    const lines = part.split("\n");
    lines.forEach((line, j) => {
      const q = /^(&gt;|>)\s?(.*)$/.exec(line);
      if (q) {
        if (!quote) { quote = h("blockquote", {}); frag.append(quote); } else quote.append(h("br"));
        appendAll(quote, renderInline(q[2], ctx, true));
        return;
      }
      quote = null;
      appendAll(frag, renderInline(line, ctx, true));
      if (j < lines.length - 1) frag.append(h("br"));
    });
  });
  return frag;
}

/** A text object ({type: plain_text|mrkdwn, text, emoji}) → nodes. */
function renderText(obj, ctx) {
  if (!obj) return document.createDocumentFragment();
  if (typeof obj === "string") return document.createTextNode(obj);
  if (obj.type === "mrkdwn") return renderMrkdwn(obj.text, ctx);
  const text = String(obj.text ?? "");
  return document.createTextNode(obj.emoji === false ? text : emojify(text));
}

function plainOf(obj) {
  if (!obj) return "";
  return emojify(String(typeof obj === "string" ? obj : obj.text ?? ""));
}

/* A select's options: [{label, options}] groups or one unnamed group. */
function optionGroups(el) {
  if (el.option_groups) return el.option_groups.map((g) => ({ label: plainOf(g.label), options: g.options || [] }));
  return [{ label: null, options: el.options || [] }];
}

function sameOption(a, b) {
  return Boolean(a && b && a.value === b.value);
}

/**
 * One interactive element → a node. ctx adds to renderMrkdwn's:
 *   blockId, inInput (inside an input block), dispatch (an input block's dispatch_action),
 *   preserved (the value a person chose before this render, or undefined),
 *   onAction(action, element) (a click or a dispatched choice), currentChannel.
 * Elements that hold a value carry data-pg-state and a node.pgState() → Slack's state entry
 * ({type, value | selected_option | selected_options | selected_user | …}).
 */
function renderElement(el, ctx) {
  const base = { "data-action-id": el.action_id, "data-block-id": ctx.blockId, "data-type": el.type };
  const act = (extra) => ctx.onAction({ type: el.type, action_id: el.action_id, block_id: ctx.blockId, ...extra }, el);
  const stateful = (node, read) => { node.setAttribute("data-pg-state", ""); node.pgState = () => ({ type: el.type, ...read() }); return node; };
  const dispatches = !ctx.inInput || ctx.dispatch;
  const had = ctx.preserved;

  switch (el.type) {
    case "button": {
      const payload = { text: el.text, value: el.value };
      if (el.style) payload.style = el.style;
      return h("button", { ...base, type: "button", class: `btn ${el.style || ""}`.trim(), onclick: () => act(payload) },
        renderText(el.text, ctx));
    }
    case "image":
      return h("span", { ...base, class: "image-alt", title: el.alt_text }, "🖼 " + (el.alt_text || "image"));
    case "static_select":
    case "external_select":
    case "radio_buttons":
    case "overflow":
      return renderChoice(el, ctx, base, act, stateful, dispatches, had);
    case "multi_static_select":
    case "checkboxes":
      return renderMultiChoice(el, ctx, base, act, stateful, dispatches, had);
    case "users_select":
    case "multi_users_select":
    case "conversations_select":
    case "multi_conversations_select":
    case "channels_select":
    case "multi_channels_select":
      return renderEntitySelect(el, ctx, base, act, stateful, dispatches, had);
    case "plain_text_input":
    case "number_input":
    case "email_text_input":
    case "url_text_input": {
      const multiline = el.type === "plain_text_input" && el.multiline;
      const node = h(multiline ? "textarea" : "input", {
        ...base, class: "text-input", placeholder: plainOf(el.placeholder) || null,
        inputmode: el.type === "number_input" ? (el.is_decimal_allowed ? "decimal" : "numeric") : null,
        maxlength: el.max_length || null, rows: multiline ? 4 : null,
      });
      node.value = had !== undefined ? had.value ?? "" : el.initial_value ?? "";
      node.addEventListener("input", () => { node.dataset.dirty = "1"; });
      if (dispatches && ctx.inInput) {
        node.addEventListener("keydown", (e) => {
          if (e.key === "Enter" && !multiline) { e.preventDefault(); act({ value: node.value }); }
        });
      }
      return stateful(node, () => ({ value: node.value === "" ? null : node.value }));
    }
    case "datepicker":
    case "timepicker": {
      const date = el.type === "datepicker";
      const key = date ? "selected_date" : "selected_time";
      const node = h("input", { ...base, type: date ? "date" : "time", class: "text-input" });
      node.value = had !== undefined ? had[key] ?? "" : (date ? el.initial_date : el.initial_time) ?? "";
      node.addEventListener("change", () => {
        node.dataset.dirty = "1";
        if (dispatches) act({ [key]: node.value || null });
      });
      return stateful(node, () => ({ [key]: node.value || null }));
    }
    default:
      return h("span", { ...base, class: "unsupported" }, `[${el.type}]`);
  }
}

function renderChoice(el, ctx, base, act, stateful, dispatches, had) {
  const all = optionGroups(el).flatMap((g) => g.options);
  if (el.type === "overflow") {
    const menu = h("div", { class: "overflow-menu", hidden: true },
      all.map((o) => h("button", { type: "button", class: "overflow-item", "data-value": o.value,
        onclick: () => { menu.hidden = true; act({ selected_option: o }); } }, renderText(o.text, ctx))));
    return h("span", { ...base, class: "overflow" },
      h("button", { type: "button", class: "btn overflow-toggle", "aria-label": "More actions",
        onclick: () => { menu.hidden = !menu.hidden; } }, "⋯"), menu);
  }
  const initial = had !== undefined ? had.selected_option : el.initial_option;
  if (el.type === "radio_buttons") {
    const name = `radio-${ctx.blockId}-${el.action_id}`;
    const node = h("div", { ...base, class: "radios" });
    for (const o of all) {
      const input = h("input", { type: "radio", name, value: o.value });
      input.checked = sameOption(o, initial);
      input.addEventListener("change", () => { node.dataset.dirty = "1"; if (dispatches) act({ selected_option: o }); });
      node.append(h("label", { class: "choice" }, input, " ", renderText(o.text, ctx),
        o.description ? h("span", { class: "hint" }, renderText(o.description, ctx)) : null));
    }
    return stateful(node, () => {
      const i = [...node.querySelectorAll("input")].findIndex((x) => x.checked);
      return { selected_option: i >= 0 ? all[i] : null };
    });
  }
  const select = h("select", { ...base, class: "select" });
  select.append(h("option", { value: "" }, plainOf(el.placeholder) || "Select an item"));
  optionGroups(el).forEach((g, gi) => {
    const parent = g.label !== null ? h("optgroup", { label: g.label }) : select;
    g.options.forEach((o, oi) => {
      const option = h("option", { value: `${gi}:${oi}` }, plainOf(o.text));
      option.selected = sameOption(o, initial);
      parent.append(option);
    });
    if (parent !== select) select.append(parent);
  });
  const chosen = () => {
    if (!select.value) return null;
    const [gi, oi] = select.value.split(":").map(Number);
    return optionGroups(el)[gi].options[oi];
  };
  select.addEventListener("change", () => {
    select.dataset.dirty = "1";
    if (dispatches && chosen()) act({ selected_option: chosen() });
  });
  return stateful(select, () => ({ selected_option: chosen() }));
}

function renderMultiChoice(el, ctx, base, act, stateful, dispatches, had) {
  const all = optionGroups(el).flatMap((g) => g.options);
  const initial = had !== undefined ? had.selected_options || [] : el.initial_options || [];
  const isOn = (o) => initial.some((x) => sameOption(x, o));
  if (el.type === "checkboxes") {
    const node = h("div", { ...base, class: "checks" });
    for (const o of all) {
      const input = h("input", { type: "checkbox", value: o.value });
      input.checked = isOn(o);
      input.addEventListener("change", () => { node.dataset.dirty = "1"; if (dispatches) act({ selected_options: read() }); });
      node.append(h("label", { class: "choice" }, input, " ", renderText(o.text, ctx)));
    }
    const read = () => all.filter((o, i) => node.querySelectorAll("input")[i].checked);
    return stateful(node, () => ({ selected_options: read() }));
  }
  const select = h("select", { ...base, class: "select", multiple: true });
  all.forEach((o, i) => {
    const option = h("option", { value: String(i) }, plainOf(o.text));
    option.selected = isOn(o);
    select.append(option);
  });
  const read = () => [...select.selectedOptions].map((x) => all[Number(x.value)]);
  select.addEventListener("change", () => { select.dataset.dirty = "1"; if (dispatches) act({ selected_options: read() }); });
  return stateful(select, () => ({ selected_options: read() }));
}

/* users_select / conversations_select / channels_select, single or multi, from ctx's lists. */
function renderEntitySelect(el, ctx, base, act, stateful, dispatches, had) {
  const multi = el.type.startsWith("multi_");
  const kind = el.type.replace(/^multi_/, "").replace(/_select$/, ""); // users | conversations | channels
  const single = { users: "user", conversations: "conversation", channels: "channel" }[kind];
  const key = multi ? `selected_${kind}` : `selected_${single}`;
  let choices;
  if (kind === "users") {
    choices = (ctx.users || []).map((u) => [u.id, u.real_name || u.name]);
  } else {
    const include = (el.filter && el.filter.include) || null;
    choices = (ctx.channels || [])
      .filter((c) => kind === "channels" ? !c.is_im : !include || include.includes(c.is_im ? "im" : "public"))
      .map((c) => [c.id, c.is_im ? c.name : "#" + c.name]);
  }
  let initial;
  if (had !== undefined) initial = had[key];
  else if (multi) initial = el[`initial_${kind}`] || [];
  else initial = el[`initial_${single}`] ?? (el.default_to_current_conversation ? ctx.currentChannel : null);
  const wanted = new Set(multi ? initial || [] : initial ? [initial] : []);
  const select = h("select", { ...base, class: "select", multiple: multi || null });
  if (!multi) select.append(h("option", { value: "" }, plainOf(el.placeholder) || "Select"));
  for (const [id, label] of choices) {
    const option = h("option", { value: id }, label);
    option.selected = wanted.has(id);
    select.append(option);
  }
  const read = () => multi ? [...select.selectedOptions].map((o) => o.value) : select.value || null;
  select.addEventListener("change", () => {
    select.dataset.dirty = "1";
    if (dispatches) act({ [key]: read() });
  });
  return stateful(select, () => ({ [key]: read() }));
}

/* rich_text → plain nodes (sections, lists, preformatted, quotes), enough to read it. */
function renderRichText(elements, ctx) {
  const inline = (items) => (items || []).map((e) => {
    if (e.type === "link") return SAFE_URL.test(e.url || "") ? h("a", { href: e.url, target: "_blank", rel: "noopener noreferrer" }, e.text || e.url) : e.text || e.url;
    if (e.type === "user") return h("span", { class: "mention" }, "@" + userName(ctx, e.user_id));
    if (e.type === "channel") return h("span", { class: "mention" }, "#" + channelName(ctx, e.channel_id));
    if (e.type === "emoji") return EMOJI[e.name] || `:${e.name}:`;
    let node = e.text ?? "";
    const s = e.style || {};
    if (s.code) node = h("code", {}, node);
    if (s.bold) node = h("b", {}, node);
    if (s.italic) node = h("i", {}, node);
    if (s.strike) node = h("s", {}, node);
    return node;
  });
  return (elements || []).map((e) => {
    if (e.type === "rich_text_list") return h(e.style === "ordered" ? "ol" : "ul", {}, (e.elements || []).map((li) => h("li", {}, inline(li.elements))));
    if (e.type === "rich_text_preformatted") return h("pre", { class: "code-block" }, inline(e.elements));
    if (e.type === "rich_text_quote") return h("blockquote", {}, inline(e.elements));
    return h("div", {}, inline(e.elements));
  });
}

/**
 * One block → a node. ctx as for renderElement, plus errors ({block_id: message}, a view's
 * response_action errors or the page's own required-field checks) and preservedFor(blockId,
 * actionId) → a value chosen before this render.
 */
function renderBlock(block, ctx) {
  const blockId = block.block_id;
  const el = (element, extra) => renderElement(element, {
    ...ctx, blockId, preserved: ctx.preservedFor ? ctx.preservedFor(blockId, element.action_id) : undefined, ...extra,
  });
  const attrs = { class: `block block-${block.type}`, "data-block-id": blockId || null };
  switch (block.type) {
    case "section":
      return h("div", attrs,
        h("div", { class: "section-body" },
          block.text ? h("div", { class: "section-text" }, renderText(block.text, ctx)) : null,
          block.fields ? h("div", { class: "fields" }, block.fields.map((f) => h("div", { class: "field" }, renderText(f, ctx)))) : null),
        block.accessory ? h("div", { class: "accessory" }, el(block.accessory)) : null);
    case "context":
      return h("div", attrs, (block.elements || []).map((e) =>
        e.type === "image" ? h("span", { class: "image-alt small" }, "🖼 " + (e.alt_text || "")) : h("span", { class: "context-item" }, renderText(e, ctx))));
    case "actions":
      return h("div", attrs, (block.elements || []).map((e) => el(e)));
    case "divider":
      return h("hr", attrs);
    case "header":
      return h("div", attrs, renderText(block.text, ctx));
    case "image":
      return h("div", attrs,
        block.title ? h("div", { class: "image-title" }, renderText(block.title, ctx)) : null,
        h("div", { class: "image-alt" }, "🖼 " + (block.alt_text || "image")));
    case "rich_text":
      return h("div", attrs, renderRichText(block.elements, ctx));
    case "input": {
      const error = ctx.errors && blockId ? ctx.errors[blockId] : null;
      return h("div", { ...attrs, class: attrs.class + (error ? " has-error" : "") },
        h("label", { class: "input-label" }, renderText(block.label, ctx),
          block.optional ? h("span", { class: "optional" }, " (optional)") : null),
        el(block.element, { inInput: true, dispatch: Boolean(block.dispatch_action), optional: Boolean(block.optional) }),
        error ? h("div", { class: "input-error", "data-testid": "input-error" }, error) : null,
        block.hint ? h("div", { class: "hint" }, renderText(block.hint, ctx)) : null);
    }
    default:
      return h("div", { ...attrs, class: "block unsupported" }, `Unsupported block: ${block.type}`);
  }
}

function renderBlocks(blocks, ctx) {
  return (blocks || []).map((b) => renderBlock(b, ctx));
}

/** The Slack state.values of every value-holding element under root. */
function collectState(root) {
  const values = {};
  for (const node of root.querySelectorAll("[data-pg-state]")) {
    const blockId = node.getAttribute("data-block-id");
    const actionId = node.getAttribute("data-action-id");
    if (!blockId || !actionId) continue;
    (values[blockId] = values[blockId] || {})[actionId] = node.pgState();
  }
  return { values };
}

/* Required inputs left empty: {block_id: message}, as Slack's client checks before submitting. */
function missingRequired(root) {
  const errors = {};
  for (const block of root.querySelectorAll(".block-input")) {
    if (block.querySelector(".optional")) continue;
    const node = block.querySelector("[data-pg-state]");
    if (!node) continue;
    const entry = node.pgState();
    const filled = Object.entries(entry).some(([k, v]) => k !== "type" && v !== null && v !== "" && !(Array.isArray(v) && v.length === 0));
    if (!filled) errors[node.getAttribute("data-block-id")] = "Please complete this required field.";
  }
  return errors;
}

/* ---------------------------------------------------------------------------------------------
 * Glue: state, polling, events
 * ------------------------------------------------------------------------------------------- */

const page = {
  state: null,
  user: new URLSearchParams(location.search).get("user"),
  where: { kind: "channel", id: null }, // or {kind: "home"}
  openThreads: new Set(),
  localErrors: {}, // view id → {block_id: message} from the page's own checks
  cache: new Map(), // message/view key → rendered node, kept while its data is unchanged
  pollTimer: null,
};

/* body[data-pending] counts POSTs in flight and body[data-version] is the state shown, so a
 * screenshot can wait until the page has settled. */
async function api(path, body) {
  const post = body !== undefined;
  if (post) document.body.dataset.pending = String(Number(document.body.dataset.pending || 0) + 1);
  try {
    const response = await fetch(path, {
      method: post ? "POST" : "GET",
      headers: post ? { "Content-Type": "application/json" } : {},
      body: post ? JSON.stringify(body) : undefined,
    });
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok && !(data && data.error)) return { ok: false, error: `HTTP ${response.status}` };
    return data || { ok: false, error: "no answer" };
  } finally {
    if (post) document.body.dataset.pending = String(Number(document.body.dataset.pending) - 1);
  }
}

function showBanner(text) {
  const banner = document.getElementById("banner");
  banner.textContent = text;
  banner.hidden = !text;
}

function ctxBase() {
  const s = page.state || {};
  const me = (s.users || []).find((u) => u.id === page.user) || {};
  const now = s.clock && s.clock.now ? Date.parse(s.clock.now) / 1000 : Date.now() / 1000;
  return { users: s.users || [], channels: s.channels || [], bot: s.bot, tz: me.tz || "UTC", now,
    currentChannel: page.where.kind === "channel" ? page.where.id : null };
}

/* Clicks and dispatched choices: a confirm dialog first when the element has one. */
function actionHandler(container) {
  return (action, element) => {
    const send = async () => {
      const root = document.querySelector(container.selector);
      const body = { user: page.user, channel: container.channel || null, message_ts: container.ts || null,
        view_id: container.viewId || null, action, state: root ? collectState(root) : { values: {} } };
      const answer = await api("/playground/api/action", body);
      if (!answer.ok) showBanner(`The action failed: ${answer.error}`);
      poll();
    };
    if (element.confirm) showConfirm(element.confirm, send); else send();
  };
}

function showConfirm(confirm, onOk) {
  const layer = document.getElementById("confirm-layer");
  const ctx = ctxBase();
  const close = () => { layer.textContent = ""; };
  layer.textContent = "";
  layer.append(h("div", { class: "overlay" },
    h("div", { class: "dialog", "data-testid": "confirm", role: "dialog" },
      h("h3", {}, renderText(confirm.title || { type: "plain_text", text: "Are you sure?" }, ctx)),
      h("div", { class: "dialog-text" }, renderText(confirm.text, ctx)),
      h("div", { class: "dialog-buttons" },
        h("button", { type: "button", class: "btn", "data-testid": "confirm-deny", onclick: close },
          plainOf(confirm.deny) || "Cancel"),
        h("button", { type: "button", class: `btn ${confirm.style === "danger" ? "danger" : "primary"}`,
          "data-testid": "confirm-ok", onclick: () => { close(); onOk(); } },
          plainOf(confirm.confirm) || "Yes")))));
}

/* Values a person chose in an element (marked dirty) survive re-renders of the same container. */
function preservedValues(root) {
  const kept = {};
  if (!root) return kept;
  for (const node of root.querySelectorAll("[data-pg-state]")) {
    const dirty = node.dataset.dirty || node.querySelector("[data-dirty]");
    if (dirty) kept[`${node.getAttribute("data-block-id")}\u0000${node.getAttribute("data-action-id")}`] = node.pgState();
  }
  return kept;
}

function formatTs(ts, ctx) {
  return formatSlackDate(Number(ts), "{time}", ctx.tz, ctx.now);
}

function renderMessage(message, channel, ctx) {
  const key = JSON.stringify([message, [...page.openThreads].includes(message.ts), ctx.tz, page.user]);
  const cacheKey = `msg:${channel}:${message.ts}`;
  const cached = page.cache.get(cacheKey);
  if (cached && cached.key === key) return cached.node;
  const selector = `[data-testid="message"][data-ts="${CSS.escape(message.ts)}"][data-channel="${CSS.escape(channel)}"]`;
  const old = document.querySelector(selector);
  const kept = preservedValues(old);
  const mctx = { ...ctx, onAction: actionHandler({ selector, channel, ts: message.ts }),
    preservedFor: (b, a) => kept[`${b}\u0000${a}`] };
  const isBot = ctx.bot && message.user === ctx.bot.user_id;
  const name = userName(ctx, message.user);
  const body = message.deleted
    ? h("div", { class: "deleted" }, "This message was deleted.")
    : message.blocks && message.blocks.length
      ? h("div", { class: "blocks" }, renderBlocks(message.blocks, mctx))
      : h("div", { class: "text" }, renderMrkdwn(message.text, mctx));
  const replies = message.replies || [];
  const open = page.openThreads.has(message.ts);
  const node = h("div", { class: `message${message.ephemeral ? " is-ephemeral" : ""}`, "data-testid": "message",
    "data-ts": message.ts, "data-channel": channel, "data-ephemeral": message.ephemeral ? "true" : null },
    h("div", { class: `avatar${isBot ? " bot" : ""}` }, (name || "?").slice(0, 1).toUpperCase()),
    h("div", { class: "message-main" },
      h("div", { class: "message-head" },
        h("span", { class: "author" }, name),
        isBot ? h("span", { class: "app-badge" }, "APP") : null,
        h("span", { class: "time" }, formatTs(message.ts, ctx)),
        message.edited ? h("span", { class: "edited" }, "(edited)") : null),
      message.ephemeral ? h("div", { class: "ephemeral-note", "data-testid": "ephemeral" }, "👁 Only visible to you") : null,
      body,
      replies.length ? h("button", { type: "button", class: "thread-toggle", "data-testid": "thread-toggle",
        onclick: () => { if (open) page.openThreads.delete(message.ts); else page.openThreads.add(message.ts); render(); } },
        `${replies.length} ${replies.length === 1 ? "reply" : "replies"}${open ? " ▾" : " ▸"}`) : null,
      replies.length && open ? h("div", { class: "thread", "data-testid": "thread-replies" },
        replies.map((r) => renderMessage(r, channel, ctx))) : null));
  page.cache.set(cacheKey, { key, node });
  return node;
}

function renderView(view, ctx, index, count) {
  const errors = { ...(view.errors || {}), ...(page.localErrors[view.id] || {}) };
  const key = JSON.stringify([view, errors, ctx.tz, page.user, index === count - 1]);
  const cacheKey = `view:${view.id}`;
  const cached = page.cache.get(cacheKey);
  if (cached && cached.key === key) return cached.node;
  const selector = `[data-view-id="${CSS.escape(view.id || "")}"]`;
  const kept = preservedValues(document.querySelector(selector));
  const vctx = { ...ctx, errors, onAction: actionHandler({ selector, viewId: view.id }),
    preservedFor: (b, a) => kept[`${b}\u0000${a}`] };
  const blocks = h("div", { class: "blocks" }, renderBlocks(view.blocks, vctx));
  if (view.type === "home") {
    const node = h("div", { class: "home", "data-testid": "home", "data-view-id": view.id || "home" }, blocks);
    page.cache.set(cacheKey, { key, node });
    return node;
  }
  const close = async () => {
    const answer = await api("/playground/api/close", { user: page.user, view_id: view.id });
    if (!answer.ok) showBanner(`Closing failed: ${answer.error}`);
    poll();
  };
  const submit = async () => {
    const root = document.querySelector(selector);
    const missing = missingRequired(root);
    page.localErrors[view.id] = missing;
    if (Object.keys(missing).length) { render(); return; }
    const answer = await api("/playground/api/submit", { user: page.user, view_id: view.id, state: collectState(root) });
    if (!answer.ok) showBanner(`Submitting failed: ${answer.error}`);
    poll();
  };
  const node = h("div", { class: `overlay modal-layer${index === count - 1 ? "" : " under"}` },
    h("div", { class: "modal", "data-testid": "modal", "data-view-id": view.id, "data-callback-id": view.callback_id, role: "dialog" },
      h("div", { class: "modal-head" },
        h("h2", {}, plainOf(view.title)),
        h("button", { type: "button", class: "x", "aria-label": "Close", onclick: close }, "✕")),
      h("div", { class: "modal-body" }, blocks),
      h("div", { class: "modal-foot" },
        h("button", { type: "button", class: "btn", "data-testid": "modal-close", onclick: close }, plainOf(view.close) || "Cancel"),
        view.submit ? h("button", { type: "button", class: "btn primary", "data-testid": "modal-submit", onclick: submit }, plainOf(view.submit)) : null)));
  page.cache.set(cacheKey, { key, node });
  return node;
}

function renderSidebar(ctx) {
  const s = page.state;
  document.getElementById("team-name").textContent = s.team ? s.team.name : "Workspace";
  const switcher = document.getElementById("user-switcher");
  const options = s.users.map((u) => `${u.id}|${u.real_name || u.name}|${u.role}`).join(",");
  if (switcher.dataset.options !== options) {
    switcher.dataset.options = options;
    switcher.textContent = "";
    for (const u of s.users) switcher.append(h("option", { value: u.id }, `${u.real_name || u.name} (${u.role})`));
  }
  switcher.value = page.user;
  const channels = document.getElementById("channel-list");
  channels.textContent = "";
  const apps = document.getElementById("app-list");
  apps.textContent = "";
  for (const c of s.channels) {
    const active = page.where.kind === "channel" && page.where.id === c.id;
    const count = ((s.messages || {})[c.id] || []).length;
    const item = h("li", {}, h("button", { type: "button", class: `nav${active ? " active" : ""}`,
      "data-testid": c.is_im ? "channel-dm" : `channel-${c.name}`, onclick: () => go({ kind: "channel", id: c.id }) },
      c.is_im ? "💬 " + c.name : "# " + c.name, count ? h("span", { class: "count" }, String(count)) : null));
    (c.is_im ? apps : channels).append(item);
  }
  apps.append(h("li", {}, h("button", { type: "button", class: `nav${page.where.kind === "home" ? " active" : ""}`,
    "data-testid": "tab-home", onclick: () => go({ kind: "home" }) }, "🏠 " + (s.bot ? s.bot.name : "App") + " · Home")));
}

function renderPanels(ctx) {
  const s = page.state;
  const key = JSON.stringify([s.clock, s.instances, s.refusals, ctx.tz]);
  if (key === page.panelKey) return;
  page.panelKey = key;
  const clock = document.getElementById("clock");
  clock.textContent = "";
  if (s.clock) {
    const epoch = Date.parse(s.clock.now) / 1000;
    const offset = Number(s.clock.offset_seconds || 0);
    clock.append(h("div", { class: "clock-now", "data-testid": "clock" }, formatSlackDate(epoch, "{date_long} {time}", ctx.tz, epoch)),
      h("div", { class: "hint" }, `${ctx.tz} · simulated clock ${offset ? "ahead by " + humanSeconds(offset) : "at real time"}`));
  }
  const select = document.getElementById("sim-instance");
  select.parentElement.hidden = !(s.instances || []).length;
  const previous = select.value;
  select.textContent = "";
  for (const i of s.instances || []) select.append(h("option", { value: String(i.id) }, `#${i.id} ${i.gpu_name || ""}`));
  if ([...select.options].some((o) => o.value === previous)) select.value = previous;
  else if (select.options.length) select.value = select.options[select.options.length - 1].value;
  const list = document.getElementById("instances");
  list.textContent = "";
  for (const i of s.instances || []) {
    list.append(h("li", { "data-instance-id": i.id }, h("b", {}, `#${i.id}`), ` ${i.gpu_name || "?"} · `,
      h("span", { class: `status status-${i.actual_status}` }, i.actual_status || "?"), i.label ? h("div", { class: "hint" }, i.label) : null));
  }
  if (!(s.instances || []).length) list.append(h("li", { class: "hint" }, "No instance yet: deploy one from /templates."));
  const refusals = document.getElementById("refusals");
  refusals.textContent = "";
  for (const r of s.refusals || []) {
    refusals.append(h("li", {}, h("code", {}, r.method), " → ", h("b", {}, r.error), r.detail ? h("div", { class: "hint" }, r.detail) : null));
  }
  if (!(s.refusals || []).length) refusals.append(h("li", { class: "hint" }, "Nothing refused so far."));
}

function humanSeconds(seconds) {
  const d = Math.floor(seconds / 86400), hh = Math.floor((seconds % 86400) / 3600), m = Math.floor((seconds % 3600) / 60);
  return [d && `${d} d`, hh && `${hh} h`, m && `${m} min`].filter(Boolean).join(" ") || `${seconds} s`;
}

function render() {
  const s = page.state;
  if (!s) return;
  document.body.dataset.version = String(s.version);
  const ctx = ctxBase();
  renderSidebar(ctx);
  renderPanels(ctx);
  const header = document.getElementById("main-header");
  header.textContent = "";
  const pane = document.getElementById("pane");
  const composer = document.getElementById("composer-wrap");
  let nodes;
  if (page.where.kind === "home") {
    header.append(h("h1", {}, "🏠 " + (s.bot ? s.bot.name : "App")), h("span", { class: "tab" }, "Home"));
    composer.hidden = true;
    nodes = [s.home ? renderView(s.home, ctx, 0, 1)
      : h("div", { class: "home empty", "data-testid": "home" }, "The bot has not published a Home tab for you yet.")];
  } else {
    const channel = s.channels.find((c) => c.id === page.where.id) || {};
    header.append(h("h1", {}, channel.is_im ? "💬 " + channel.name : "# " + (channel.name || "")));
    composer.hidden = false;
    const messages = (s.messages || {})[page.where.id] || [];
    nodes = messages.length ? messages.map((m) => renderMessage(m, page.where.id, ctx))
      : [h("div", { class: "empty" }, "No messages yet. Type /templates 12gb below.")];
  }
  const scroll = document.getElementById("scroll");
  const atBottom = scroll.scrollHeight - scroll.scrollTop - scroll.clientHeight < 40;
  replaceChildrenKeeping(pane, nodes);
  if (atBottom) scroll.scrollTop = scroll.scrollHeight;
  const views = s.views || [];
  replaceChildrenKeeping(document.getElementById("modals"), views.map((v, i) => renderView(v, ctx, i, views.length)));
}

/* Replaces children without detaching nodes that stay (so focus and typing survive a poll). */
function replaceChildrenKeeping(parent, nodes) {
  const wanted = new Set(nodes);
  for (const child of [...parent.childNodes]) if (!wanted.has(child)) child.remove();
  nodes.forEach((node, i) => { if (parent.childNodes[i] !== node) parent.insertBefore(node, parent.childNodes[i] || null); });
}

function go(where) {
  page.where = where;
  render();
  if (where.kind === "home") {
    api("/playground/api/home_opened", { user: page.user }).then((answer) => {
      if (!answer.ok) showBanner(`Opening the Home tab failed: ${answer.error}`);
      poll();
    });
  }
}

async function poll() {
  clearTimeout(page.pollTimer);
  try {
    const query = page.user ? `?user=${encodeURIComponent(page.user)}` : "";
    const state = await api(`/playground/api/state${query}`);
    if (state && state.users) {
      if (!page.user && state.users.length) page.user = state.users[0].id;
      const changed = !page.state || state.version !== page.state.version || page.state.__user !== page.user;
      state.__user = page.user;
      page.state = state;
      if (changed) {
        if (page.where.kind === "channel" && !state.channels.some((c) => c.id === page.where.id)) {
          page.where = { kind: "channel", id: state.channels.length ? state.channels[0].id : null };
        }
        render();
      } else {
        renderPanels(ctxBase()); // the simulated clock and the instances move without a version
      }
      if (!query) { poll(); return; }
    }
  } catch (e) {
    showBanner("The playground does not answer; is `python -m bot demo` still running?");
  }
  page.pollTimer = setTimeout(poll, 400);
}

function setup() {
  const composer = document.getElementById("composer");
  composer.addEventListener("keydown", async (e) => {
    if (e.key !== "Enter" || e.shiftKey) return;
    e.preventDefault();
    const text = composer.value.trim();
    if (!text) return;
    if (!text.startsWith("/")) {
      showBanner("The playground sends slash commands to the bot: start with / (try /templates 12gb).");
      return;
    }
    composer.value = "";
    showBanner("");
    const answer = await api("/playground/api/command", { user: page.user, channel: page.where.id, text });
    if (!answer.ok) showBanner(`${text.split(/\s/)[0]} failed with the error "${answer.error}"`);
    poll();
  });
  document.getElementById("user-switcher").addEventListener("change", (e) => {
    page.user = e.target.value;
    page.cache.clear();
    page.state = null;
    const url = new URL(location.href);
    url.searchParams.set("user", page.user);
    history.replaceState(null, "", url);
    poll();
    if (page.where.kind === "home") go(page.where);
  });
  document.querySelectorAll("[data-op]").forEach((button) => button.addEventListener("click", () => sim({ op: button.dataset.op })));
  document.querySelectorAll("[data-seconds]").forEach((button) => button.addEventListener("click", () => sim({ op: "advance", seconds: Number(button.dataset.seconds) })));
  poll();
}

async function sim(body) {
  const id = document.getElementById("sim-instance").value;
  if (body.op !== "advance") {
    if (!id) { showBanner("No instance to move along yet: deploy one first."); return; }
    body.instance_id = Number(id);
  }
  const answer = await api("/playground/api/sim", body);
  if (!answer.ok) showBanner(`The simulator refused: ${answer.error}`);
  poll();
}

if (typeof window !== "undefined") {
  window.Playground = { renderMrkdwn, renderText, renderBlock, renderElement, formatSlackDate, collectState };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setup); else setup();
}
