// The owner web app: screens for the inbox, a message, compose and sent, kept
// live by the identity's event stream. Views are cloned from the <template>s of
// index.html and filled with textContent only: nothing a sender wrote is ever
// parsed as HTML. Routes live in the fragment (#/inbox, #/message/<id>, ...);
// a sign-in link's one-time code arrives as #code=<code> and is taken off the
// address bar before it is used.
import * as api from "./api.js";

const main = document.getElementById("main");
const banner = document.getElementById("banner");
const unreadBadge = document.getElementById("unread");

const state = {
  identity: null,   // the identity document
  signedIn: false,
  unread: new Set(), // ids of unread inbox messages seen so far
  events: null,     // the EventSource, while signed in
  view: null,       // what the current screen wants to hear: {onMessage, onDelivery, reload}
};

// -- helpers ------------------------------------------------------------------

function clone(id) {
  const node = document.getElementById(id).content.firstElementChild.cloneNode(true);
  const slots = {};
  for (const element of [node, ...node.querySelectorAll("[data-slot]")]) {
    if (element.dataset.slot)
      slots[element.dataset.slot] = element;
  }
  return { node, slots };
}

const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

function setTime(element, iso) {
  element.dateTime = iso || "";
  element.textContent = iso ? timeFormat.format(new Date(iso)) : "";
}

function showBanner(text) {
  banner.textContent = text;
  banner.hidden = !text;
}

function show(node, focus) {
  main.replaceChildren(node);
  const heading = node.querySelector("h1");
  if (focus && heading)
    heading.focus({ preventScroll: true });
}

function updateTitle() {
  const name = state.identity ? state.identity.name : "posta";
  const count = state.unread.size;
  document.title = (count ? `(${count}) ` : "") + name + " — posta";
  unreadBadge.textContent = String(count);
  unreadBadge.hidden = count === 0;
  unreadBadge.setAttribute("aria-label", `${count} unread`);
}

function noteMessage(message) {
  if (message.box !== "inbox")
    return;
  if (message.read)
    state.unread.delete(message.id);
  else
    state.unread.add(message.id);
}

// Every API failure goes through here: an ended session returns to sign-in,
// an unreachable daemon says so and is retried by whoever called.
function failed(error) {
  if (error instanceof api.ApiError && error.status === 401 && state.signedIn) {
    signedOut("Your session has ended. Sign in again.");
    return;
  }
  if (error instanceof api.ApiError && error.status === 0) {
    showBanner("The server cannot be reached. Retrying…");
    return;
  }
  showBanner(error.message || String(error));
}

// -- sign-in ------------------------------------------------------------------

function renderSignIn(reason) {
  document.getElementById("nav").hidden = true;
  const { node, slots } = clone("t-signin");
  if (reason) {
    slots.reason.textContent = reason;
    slots.reason.hidden = false;
  }
  const error = node.querySelector('[data-error="token"]');
  slots.form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = slots.form.elements.token.value.trim();
    error.hidden = true;
    if (!token) {
      error.textContent = "Paste an owner token, or open a sign-in link.";
      error.hidden = false;
      return;
    }
    try {
      await api.signIn({ token });
      signedIn();
    } catch (e) {
      error.textContent = e.status === 401 ? "That token is not valid for this identity." : e.message;
      error.hidden = false;
    }
  });
  show(node, true);
  document.title = "Sign in — posta";
}

function signedIn() {
  state.signedIn = true;
  document.getElementById("nav").hidden = false;
  showBanner("");
  connectEvents();
  if (!location.hash.startsWith("#/"))
    history.replaceState(null, "", "#/inbox");
  route();
  refreshUnread();
}

function signedOut(reason) {
  state.signedIn = false;
  state.unread.clear();
  state.view = null;
  if (state.events) {
    state.events.close();
    state.events = null;
  }
  renderSignIn(reason);
}

// -- the event stream -----------------------------------------------------------

// The browser's EventSource reconnects by itself after a dropped connection
// and sends Last-Event-ID, so the worker replays what was missed. It gives up
// only on an answer that is not a stream (a 401, a 502 while the worker
// restarts); then a fresh EventSource cannot say where it was, so the screen
// reloads from the API after reconnecting.
function connectEvents() {
  if (state.events)
    state.events.close();
  const source = new EventSource("/api/events");
  state.events = source;
  let resync = false;
  source.addEventListener("open", () => {
    showBanner("");
    if (resync) {
      resync = false;
      reloadView();
    }
  });
  source.addEventListener("message.received", (event) => {
    const message = JSON.parse(event.data);
    noteMessage(message);
    updateTitle();
    state.view?.onMessage?.(message);
  });
  source.addEventListener("delivery.updated", (event) => {
    state.view?.onDelivery?.(JSON.parse(event.data));
  });
  source.addEventListener("stream.reset", () => reloadView());
  source.addEventListener("error", () => {
    if (source !== state.events)
      return;
    if (source.readyState === EventSource.CONNECTING) {
      showBanner("Reconnecting to the server…");
      return;
    }
    // Closed for good: find out whether the session is still valid.
    showBanner("Reconnecting to the server…");
    setTimeout(async () => {
      if (source !== state.events)
        return;
      try {
        await api.request("GET", "/api/sessions");
      } catch (error) {
        failed(error);
        if (!state.signedIn)
          return;
      }
      connectEvents();
      state.events.addEventListener("open", () => reloadView(), { once: true });
    }, 2000);
  });
}

function reloadView() {
  refreshUnread();
  state.view?.reload?.();
}

async function refreshUnread() {
  try {
    const page = await api.messages("inbox");
    state.unread.clear();
    for (const message of page.messages)
      noteMessage(message);
    updateTitle();
  } catch (error) {
    failed(error);
  }
}

// -- inbox and sent ------------------------------------------------------------

function deliveryDetail(delivery) {
  const parts = [];
  parts.push(`${delivery.attempts} attempt${delivery.attempts === 1 ? "" : "s"}`);
  if (delivery.state === "queued" && delivery.next_attempt_at)
    parts.push("next " + timeFormat.format(new Date(delivery.next_attempt_at)));
  if (delivery.last_status)
    parts.push(`last answer ${delivery.last_status}`);
  if (delivery.last_error)
    parts.push(delivery.last_error);
  return parts.join(" · ");
}

function renderRecipient(list, delivery) {
  let row = [...list.children].find((li) => li.dataset.to === delivery.to);
  if (!row) {
    row = clone("t-recipient").node;
    row.dataset.to = delivery.to;
    list.append(row);
  }
  row.querySelector('[data-slot="to"]').textContent = delivery.to;
  const stateLabel = row.querySelector('[data-slot="state"]');
  stateLabel.textContent = delivery.state;
  stateLabel.className = "state " + delivery.state;
  row.querySelector('[data-slot="detail"]').textContent = deliveryDetail(delivery);
  row.dataset.state = delivery.state;
}

function renderItem(message, box) {
  const { node, slots } = clone("t-item");
  node.dataset.id = message.id;
  slots.link.href = `#/message/${encodeURIComponent(message.id)}`;
  slots.who.textContent = box === "inbox" ? message.from : "To " + message.to.join(", ");
  slots.subject.textContent = message.subject || "(no subject)";
  setTime(slots.time, box === "inbox" ? message.received_at : message.sent_at);
  if (box === "inbox" && !message.read) {
    node.classList.add("unread");
    slots.link.setAttribute("aria-label", `Unread: ${message.subject || "(no subject)"}, from ${message.from}`);
  }
  if (box === "sent")
    slots.recipients.hidden = false;
  return node;
}

async function renderList(box) {
  const { node, slots } = clone("t-list");
  slots.title.textContent = box === "inbox" ? "Inbox" : "Sent";
  slots.empty.textContent = box === "inbox" ? "No messages yet. Messages delivered to this identity appear here as they arrive."
    : "Nothing sent yet. Compose a message to another identity.";
  let next = null;
  let byMessage = new Map(); // sent: message id -> its deliveries

  const addDeliveries = (item, id) => {
    const list = item.querySelector('[data-slot="recipients"]');
    for (const delivery of byMessage.get(id) || [])
      renderRecipient(list, delivery);
  };
  const append = (page) => {
    for (const message of page.messages) {
      const item = renderItem(message, box);
      slots.items.append(item);
      if (box === "sent")
        addDeliveries(item, message.id);
    }
    next = page.next;
    slots.more.hidden = !next;
    slots.empty.hidden = slots.items.children.length > 0;
  };
  const load = async () => {
    if (box === "sent") {
      byMessage = new Map();
      for (const delivery of (await api.deliveries()).deliveries) {
        if (!byMessage.has(delivery.message_id))
          byMessage.set(delivery.message_id, []);
        byMessage.get(delivery.message_id).push(delivery);
      }
    }
    const page = await api.messages(box);
    slots.items.replaceChildren();
    append(page);
  };

  slots.more.addEventListener("click", async () => {
    try {
      append(await api.messages(box, next));
    } catch (error) {
      failed(error);
    }
  });
  state.view = {
    reload: () => load().catch(failed),
    onMessage(message) {
      if (message.box !== box || slots.items.querySelector(`[data-id="${CSS.escape(message.id)}"]`))
        return;
      slots.items.prepend(renderItem(message, box));
      slots.empty.hidden = true;
    },
    onDelivery(delivery) {
      if (box !== "sent")
        return;
      const item = slots.items.querySelector(`[data-id="${CSS.escape(delivery.message_id)}"]`);
      if (item)
        renderRecipient(item.querySelector('[data-slot="recipients"]'), delivery);
      else
        load().catch(failed); // a message sent from elsewhere (another tab, the API)
    },
  };
  try {
    await load();
  } catch (error) {
    failed(error);
  }
  return node;
}

// -- one message ----------------------------------------------------------------

async function renderMessage(id) {
  const { node, slots } = clone("t-message");
  let message;
  try {
    message = await api.message(id);
  } catch (error) {
    if (error.status === 404) {
      const gone = document.createElement("p");
      gone.className = "empty";
      gone.textContent = "This message does not exist (it may have been deleted).";
      return gone;
    }
    throw error;
  }
  const inbound = message.box === "inbox";
  slots.subject.textContent = message.subject || "(no subject)";
  slots.from.textContent = message.from;
  slots.to.textContent = message.to.join(", ");
  slots["time-label"].textContent = inbound ? "Received" : "Sent";
  setTime(slots.time, inbound ? message.received_at : message.sent_at);
  slots.body.textContent = message.body;

  const showRead = () => {
    slots["toggle-read"].textContent = message.read ? "Mark unread" : "Mark read";
  };
  const setRead = async (read) => {
    message = await api.markRead(message.id, read);
    noteMessage(message);
    updateTitle();
    showRead();
  };
  if (inbound) {
    showRead();
    slots["toggle-read"].addEventListener("click", () => setRead(!message.read).catch(failed));
    if (!message.read)
      await setRead(true).catch(failed);
  } else {
    slots["toggle-read"].hidden = true;
    slots["deliveries-section"].hidden = false;
    const all = await api.deliveries();
    for (const delivery of all.deliveries.filter((d) => d.message_id === message.id))
      renderRecipient(slots.deliveries, delivery);
  }

  slots.delete.addEventListener("click", () => slots.confirm.showModal());
  slots.confirm.addEventListener("close", async () => {
    if (slots.confirm.returnValue !== "delete")
      return;
    try {
      await api.remove(message.id);
      state.unread.delete(message.id);
      updateTitle();
      location.hash = inbound ? "#/inbox" : "#/sent";
    } catch (error) {
      failed(error);
    }
  });
  state.view = {
    onDelivery(delivery) {
      if (delivery.message_id === message.id)
        renderRecipient(slots.deliveries, delivery);
    },
    reload: () => route(),
  };
  return node;
}

// -- compose ----------------------------------------------------------------------

// Which field of the form an API error is about: the API names it in its
// message ("the field \"to\" ...", "\"subject\" is ...").
function errorField(error) {
  if (["invalid_url", "too_many_recipients"].includes(error.code))
    return "to";
  const named = /"(to|subject|body)"/.exec(error.message || "");
  if (named)
    return named[1];
  if (error.code === "body_too_large")
    return "body";
  return "form";
}

function renderCompose() {
  const { node, slots } = clone("t-compose");
  const form = slots.form;
  const errors = {};
  for (const element of node.querySelectorAll("[data-error]"))
    errors[element.dataset.error] = element;
  const clearErrors = () => {
    for (const [name, element] of Object.entries(errors)) {
      element.hidden = true;
      form.elements[name]?.removeAttribute("aria-invalid");
    }
  };
  const showError = (name, text) => {
    errors[name].textContent = text;
    errors[name].hidden = false;
    const field = form.elements[name];
    if (field) {
      field.setAttribute("aria-invalid", "true");
      field.focus();
    }
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    const to = form.elements.to.value.split(/[\s,]+/).filter(Boolean);
    if (to.length === 0) {
      showError("to", "Name at least one recipient: an identity URL such as https://name.example.");
      return;
    }
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      const sent = await api.send(to.length === 1 ? to[0] : to, form.elements.subject.value, form.elements.body.value);
      location.hash = `#/message/${encodeURIComponent(sent.id)}`;
    } catch (error) {
      if (error.status === 401)
        failed(error);
      else if (error.status === 0)
        showError("form", "The server cannot be reached; nothing was sent. Try again.");
      else
        showError(errorField(error), error.message);
    } finally {
      button.disabled = false;
    }
  });
  state.view = null;
  return node;
}

// -- routing ------------------------------------------------------------------------

let routing = 0; // the newest route() call; an older one that finishes late is dropped

async function route() {
  if (!state.signedIn)
    return;
  const ticket = ++routing;
  const hash = location.hash || "#/inbox";
  const [, screen, id] = /^#\/([a-z]+)(?:\/(.+))?$/.exec(hash) || [];
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === screen)
      link.setAttribute("aria-current", "page");
    else
      link.removeAttribute("aria-current");
  }
  state.view = null;
  let node;
  try {
    if (screen === "message" && id)
      node = await renderMessage(decodeURIComponent(id));
    else if (screen === "sent")
      node = await renderList("sent");
    else if (screen === "compose")
      node = renderCompose();
    else
      node = await renderList("inbox");
  } catch (error) {
    failed(error);
    return;
  }
  if (ticket === routing && state.signedIn) {
    show(node, true);
    updateTitle();
  }
}

// -- start ----------------------------------------------------------------------------

// Whether the browser holds a session: a sign-in link's code is exchanged
// first (taken off the address bar and history before it is sent).
async function resume() {
  const code = /^#code=([^&]+)$/.exec(location.hash);
  if (code) {
    history.replaceState(null, "", location.pathname + "#/inbox");
    try {
      await api.signIn({ code: decodeURIComponent(code[1]) });
      signedIn();
    } catch (error) {
      renderSignIn(error.status === 401 ? "This sign-in link was used already or has expired. Make a new one."
        : error.message);
    }
    return;
  }
  try {
    await api.request("GET", "/api/sessions");
    signedIn();
  } catch (error) {
    if (error.status === 0) {
      failed(error);
      setTimeout(resume, 3000);
      return;
    }
    renderSignIn();
  }
}

async function start() {
  document.getElementById("sign-out").addEventListener("click", async () => {
    try {
      await api.signOut();
    } catch (error) {
      if (error.status !== 401) {
        failed(error);
        return;
      }
    }
    history.replaceState(null, "", location.pathname);
    signedOut("You are signed out.");
  });
  window.addEventListener("hashchange", () => route());
  try {
    state.identity = await api.identity();
    document.getElementById("identity-name").textContent = state.identity.name;
    document.getElementById("identity-url").textContent = state.identity.url;
  } catch (error) {
    failed(error);
  }
  updateTitle();
  await resume();
}

start();
