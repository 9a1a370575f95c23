// natter's web client: the screens and their state. It speaks OurChat v1 (conn.js) and
// uploads files with tus (tus.js); docs/web-client.md describes what it does and why.

import { Conn, ServerError } from './conn.js';
import { upload } from './tus.js';
import { h, $, icon, icons, size, clock, dayKey, dayLabel, when, linkify, initials, dialog, prompt, confirmBox, toast } from './ui.js';

const TOKEN = 'natter.token';
const PAGE = 50;
const TYPING_EVERY_MS = 3000;
const TYPING_SHOWN_MS = 6000;
const PICTURES = ['image/png', 'image/jpeg', 'image/gif', 'image/webp'];

const S = {
  me: null,
  profile: null,
  chats: new Map(), // 'g12' / 'p10002' -> chat
  profiles: new Map(), // ocid -> profile, or a promise of one
  groups: new Map(), // group id -> group info (code 151), or a promise
  friends: new Map(), // ocid -> {online, since}
  requestsIn: new Map(), // ocid -> {msg, time}
  invitations: new Map(), // group id -> {by, time}
  joinRequests: new Map(), // 'group:ocid' -> {group_id, ocid, msg, time}
  blocked: new Set(),
  typing: new Map(), // chat key -> {ocid, until}
  pending: new Map(), // client_id -> a message being uploaded or sent
  open: null,
  search: null,
  panel: null, // {render} of the open panel dialog
  links: new Map(), // file id -> {url, expires}
};

const conn = new Conn({
  url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`,
  onPush: (f) => push(f),
  onState: (s) => connState(s),
  since: () => [...S.chats.values()]
    .filter((c) => maxIndex(c) > 0)
    .map((c) => ({ [c.kind === 'g' ? 'group_id' : 'private_id']: c.id, index: maxIndex(c) })),
});

// ---------- chats and messages ----------

function keyOf(m) {
  const s = m.sender || {};
  if (s.group_id !== undefined) return `g${s.group_id}`;
  return `p${Number(s.ocid) === S.me ? s.private_id : s.ocid}`;
}

function chat(key) {
  let c = S.chats.get(key);
  if (!c) {
    c = {
      key, kind: key[0], id: Number(key.slice(1)), name: '', last: null, read: 0, unread: 0,
      msgs: new Map(), oldest: null, complete: false, loading: false, peerRead: 0, nodes: new Map(),
    };
    S.chats.set(key, c);
    if (c.kind === 'g') groupInfo(c.id).then((g) => { c.name = g.name; renderList(); if (S.open === key) renderHead(); }).catch(() => {});
  }
  return c;
}

// The highest index of the chat's messages held here.
function held(c) {
  let m = 0;
  for (const i of c.msgs.keys()) if (i > m) m = i;
  return m;
}

// The highest index known of the chat (held, or its newest message from the chat list).
function maxIndex(c) {
  return Math.max(held(c), c.last?.index || 0);
}

function target(c) {
  return c.kind === 'g' ? { group_id: c.id } : { private_id: c.id };
}

// A message from the server (live, synced or read from history). Known indexes are ignored,
// so a message is shown once whatever way it arrives.
function addMessage(m, live) {
  const c = chat(keyOf(m));
  if (c.msgs.has(m.index)) return false;
  const top = held(c);
  c.msgs.set(m.index, m);
  if (!c.last || m.index >= c.last.index) c.last = m;
  const mine = Number(m.sender.ocid) === S.me;
  if (live) {
    // A gap: something between what we hold and this one did not reach us; read it.
    if (c.oldest !== null && m.index > top + 1 && top > 0) fill(c, top);
    if (!mine && m.index > c.read) {
      if (S.open === c.key && visible()) markRead(c);
      else c.unread += 1;
      notify(c, m);
    }
  }
  return true;
}

async function fill(c, after) {
  try {
    const r = await conn.request({ code: 104, ...target(c), after, limit: 500 });
    for (const m of r.messages) addMessage(m, false);
    if (r.more) fill(c, held(c));
    refresh(c);
  } catch { /* read again at the next reconnect */ }
}

async function loadOlder(c) {
  if (c.loading || c.complete) return;
  c.loading = true;
  try {
    const q = { code: 104, ...target(c), limit: PAGE };
    if (c.oldest !== null) q.before = c.oldest;
    const r = await conn.request(q);
    for (const m of r.messages) addMessage(m, false);
    if (r.messages.length) c.oldest = Math.min(c.oldest ?? Infinity, r.messages[0].index);
    else if (c.oldest === null) c.oldest = 1;
    if (!r.more) c.complete = true;
  } catch (e) {
    toast(e.message);
  } finally {
    c.loading = false;
  }
  if (S.open === c.key) renderMessages({ keep: true });
}

function visible() {
  return document.visibilityState === 'visible';
}

// Tell the server (shortly, once for a burst of messages) that the chat is read to its end.
function markRead(c) {
  clearTimeout(c.readTimer);
  c.unread = 0;
  c.readTimer = setTimeout(() => {
    const index = maxIndex(c);
    if (index <= c.read) return;
    c.read = index;
    conn.request({ code: 184, ...target(c), index }).catch(() => {});
  }, 300);
}

function notify(c, m) {
  if (!document.hidden || !('Notification' in window) || Notification.permission !== 'granted') return;
  try {
    const n = new Notification(chatName(c), { body: preview(m), tag: c.key });
    n.onclick = () => { window.focus(); openChat(c.key); };
  } catch { /* some browsers allow notifications only from a service worker */ }
}

function preview(m) {
  if (!m) return '';
  const f = m.file;
  const cap = m.msg ? ` ${m.msg}` : '';
  if (m.code === 2 || m.code === 1) return `Picture${cap}`;
  if (m.code === 3 && f?.kind === 'voice') return `Voice note${cap}`;
  if (m.code === 3) return `File: ${f?.name || 'file'}${cap}`;
  return m.msg;
}

// ---------- profiles, groups, links ----------

function profile(ocid) {
  ocid = Number(ocid);
  const p = S.profiles.get(ocid);
  if (p && !(p instanceof Promise)) return p;
  if (!p) {
    const q = conn.request({ code: 126, ocid }).then((r) => {
      S.profiles.set(ocid, r.profile);
      renderList();
      if (S.open) { renderHead(); renderMessages({ keep: true }); }
      S.panel?.render();
      return r.profile;
    }).catch(() => { S.profiles.delete(ocid); });
    S.profiles.set(ocid, q);
  }
  return null;
}

function nameOf(ocid) {
  ocid = Number(ocid);
  if (ocid === S.me) return S.profile?.nickname || 'Me';
  const p = profile(ocid);
  return p ? (p.remark || p.nickname || `#${ocid}`) : `#${ocid}`;
}

function chatName(c) {
  if (c.kind === 'g') return c.name || `Group ${c.id}`;
  return nameOf(c.id);
}

function groupInfo(id, fresh = false) {
  const g = S.groups.get(id);
  if (g && !fresh) return g instanceof Promise ? g : Promise.resolve(g);
  const q = conn.request({ code: 150, group_id: id }).then((r) => {
    S.groups.set(id, r.group);
    return r.group;
  });
  q.catch(() => S.groups.delete(id));
  S.groups.set(id, q);
  return q;
}

// A signed link for a file (so <img>, <audio> and downloads need no header).
async function link(id) {
  const l = S.links.get(id);
  if (l && l.expires * 1000 > Date.now() + 60000) return l.url;
  const r = await fetch(`/files/${id}/link`, { headers: { Authorization: `Bearer ${conn.token}` } });
  if (!r.ok) throw new Error('the file cannot be read');
  const j = await r.json();
  S.links.set(id, j);
  return j.url;
}

function avatar(src, name, cls = 'avatar') {
  if (typeof src === 'string' && /^\/files\/[a-z2-7]{26}$/.test(src)) {
    return h('img', { class: cls, src, alt: '' });
  }
  return h('span', { class: cls, 'aria-hidden': 'true' }, initials(name));
}

// ---------- pushes ----------

function push(f) {
  switch (f.code) {
    case 0: case 1: case 2: case 3: {
      const c = chat(keyOf(f));
      const t = S.typing.get(c.key);
      if (t && Number(t.ocid) === Number(f.sender.ocid)) { S.typing.delete(c.key); renderTyping(); }
      if (addMessage(f, true)) refresh(c);
      // A system message: who is in the group (or its name) changed; it may be this account
      // that left or was removed, and then the group leaves the list.
      if (f.type === 0 && c.kind === 'g') {
        groupInfo(c.id, true).then((g) => {
          if (g.role === null) {
            S.chats.delete(c.key);
            if (S.open === c.key) closeChat();
          } else {
            c.name = g.name;
            if (S.open === c.key) renderHead();
          }
          renderList();
        }).catch(() => {});
      }
      break;
    }
    case 119:
      S.requestsIn.set(f.ocid, { msg: f.msg, time: f.time });
      renderBadges();
      break;
    case 120:
      if (f.state === 'accepted') S.friends.set(f.ocid, { online: false, since: f.time });
      if (f.state === 'removed') S.friends.delete(f.ocid);
      if (f.state !== 'removed') outgoing(f.ocid, false);
      S.requestsIn.delete(f.ocid);
      S.profiles.delete(f.ocid);
      renderBadges();
      renderList();
      break;
    case 122: {
      const key = keyOf(f);
      S.typing.set(key, { ocid: f.sender.ocid, until: Date.now() + TYPING_SHOWN_MS });
      renderTyping();
      setTimeout(renderTyping, TYPING_SHOWN_MS + 50);
      break;
    }
    case 123: {
      const fr = S.friends.get(f.ocid);
      if (fr) fr.online = f.online;
      renderList();
      if (S.open) renderHead();
      break;
    }
    case 180:
      S.joinRequests.set(`${f.group_id}:${f.ocid}`, f);
      renderBadges();
      break;
    case 181:
      S.joinRequests.delete(`${f.group_id}:${f.ocid}`);
      if (f.ocid === S.me) {
        toast(f.accepted ? 'Your request to join a group was accepted' : 'Your request to join a group was declined');
        if (f.accepted) loadChats();
      }
      renderBadges();
      break;
    case 182:
      S.invitations.set(f.group_id, f);
      renderBadges();
      break;
    case 183: {
      S.chats.delete(`g${f.group_id}`);
      S.groups.delete(f.group_id);
      toast(f.disbanded ? 'A group you were in was disbanded' : 'You were removed from a group');
      if (S.open === `g${f.group_id}`) closeChat();
      renderList();
      break;
    }
    case 188: {
      const key = f.group_id !== undefined ? `g${f.group_id}` : `p${f.private_id}`;
      const c = S.chats.get(key);
      if (!c) break;
      if (f.ocid === S.me) {
        c.read = Math.max(c.read, f.index);
        c.unread = [...c.msgs.values()].filter((m) => m.index > c.read && Number(m.sender.ocid) !== S.me).length;
        renderList();
      } else {
        c.peerRead = Math.max(c.peerRead, f.index);
        if (S.open === key) renderMessages({ keep: true });
      }
      break;
    }
    default:
      break;
  }
  S.panel?.render();
}

function refresh(c) {
  renderList();
  if (S.open === c.key) renderMessages({});
}

// ---------- connection state ----------

const STATES = {
  connecting: 'Connecting…', open: 'Connecting…', resuming: 'Reconnecting…', online: 'Online',
  offline: 'Offline — reconnecting', closed: 'Disconnected', ended: 'Logged out',
};

let everOnline = false;
function connState(s) {
  const el = $('#status');
  el.textContent = STATES[s] || s;
  el.dataset.state = s;
  if (s === 'online' && S.me !== null) {
    if (everOnline) catchUp();
    everOnline = true;
    flush();
  }
  if (s === 'ended' && S.me !== null) {
    localStorage.removeItem(TOKEN);
    toast('This login has ended. Please log in again.');
    setTimeout(() => location.reload(), 1500);
  }
}

// After a reconnect: the chat list, friends and anything of an open or read chat that was in
// flight when the connection dropped.
async function catchUp() {
  loadChats();
  loadPeople();
  for (const c of S.chats.values()) if (c.oldest !== null) fill(c, held(c));
}

// ---------- sending ----------

function newId() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
}

function sendText(text) {
  const c = S.chats.get(S.open);
  if (!c || !text.trim()) return;
  const client_id = newId();
  S.pending.set(client_id, {
    key: c.key, state: 'sending', time: Date.now() / 1000,
    frame: { code: 0, sender: target(c), msg: text, client_id },
  });
  renderMessages({ bottom: true });
  flush();
}

async function sendFile(file) {
  const c = S.chats.get(S.open);
  if (!c) return;
  const client_id = newId();
  const p = { key: c.key, state: 'uploading', sent: 0, total: file.size, time: Date.now() / 1000, name: file.name };
  S.pending.set(client_id, p);
  renderMessages({ bottom: true });
  try {
    const id = await upload(file, conn.token, (sent, total) => {
      p.sent = sent;
      p.total = total;
      const bar = p.node?.querySelector('progress');
      if (bar) { bar.value = sent; bar.max = total || 1; }
    });
    const picture = PICTURES.includes(file.type);
    const kind = picture ? 'image' : 'file';
    const duration = !picture && file.type.startsWith('audio/') ? await durationOf(file) : 0;
    const f = { id };
    if (duration) f.duration_ms = duration;
    p.file = { id, kind: duration ? 'voice' : kind, name: file.name, size: file.size, mime: file.type, duration_ms: duration || undefined };
    p.frame = { code: picture ? 2 : 3, sender: target(c), file: f, msg: '', client_id };
    p.state = 'sending';
  } catch (e) {
    p.state = 'failed';
    p.error = e.message;
  }
  renderMessages({});
  flush();
}

function durationOf(file) {
  return new Promise((resolve) => {
    const url = URL.createObjectURL(file);
    const a = new Audio();
    const done = (v) => { URL.revokeObjectURL(url); resolve(v); };
    a.onloadedmetadata = () => done(Number.isFinite(a.duration) && a.duration > 0 ? Math.min(Math.round(a.duration * 1000), 3600000) : 0);
    a.onerror = () => done(0);
    a.src = url;
  });
}

// Send every message that waits, oldest first; a message the connection lost is sent again
// with the same client_id when it is back (the server stores it once).
function flush() {
  for (const [client_id, p] of S.pending) {
    if (p.state !== 'sending' || p.inflight) continue;
    p.inflight = true;
    conn.request(p.frame).then((ack) => {
      S.pending.delete(client_id);
      const c = chat(p.key);
      const m = {
        code: p.frame.code, time: ack.time, cid: ack.cid, index: ack.index, msg: p.frame.msg,
        sender: { ocid: S.me, ...p.frame.sender },
      };
      if (p.file) m.file = p.file;
      addMessage(m, false);
      markRead(c);
      refresh(c);
    }, (e) => {
      p.inflight = false;
      if (e instanceof ServerError) {
        p.state = 'failed';
        p.error = e.message;
        if (S.open === p.key) renderMessages({});
      }
    });
  }
}

// ---------- loading ----------

async function loadChats() {
  const r = await conn.request({ code: 186 });
  const seen = new Set();
  for (const x of r.chats) {
    const key = x.group_id !== undefined ? `g${x.group_id}` : `p${x.private_id}`;
    seen.add(key);
    const c = chat(key);
    if (x.name) c.name = x.name;
    if (x.last && (!c.last || x.last.index >= c.last.index)) c.last = x.last;
    if (x.last && c.oldest !== null && x.last.index > held(c)) fill(c, held(c));
    c.read = Math.max(c.read, x.read);
    c.unread = S.open === key && visible() ? 0 : x.unread;
    if (S.open === key && x.unread) markRead(c);
  }
  for (const [key, c] of S.chats) if (c.kind === 'g' && !seen.has(key)) S.chats.delete(key);
  renderList();
}

async function loadPeople() {
  const [fl, jr, inv, bl] = await Promise.all([
    conn.request({ code: 117 }), conn.request({ code: 158 }), conn.request({ code: 164 }), conn.request({ code: 148 }),
  ]);
  S.friends = new Map(fl.friends.map((f) => [f.ocid, { online: f.online, since: f.since }]));
  S.requestsIn = new Map(fl.requests.map((q) => [q.ocid, q]));
  S.joinRequests = new Map(jr.requests.map((q) => [`${q.group_id}:${q.ocid}`, q]));
  S.invitations = new Map(inv.invitations.map((i) => [i.group_id, i]));
  S.blocked = new Set(bl.blocked);
  for (const o of outgoingList()) if (S.friends.has(o)) outgoing(o, false);
  renderBadges();
  renderList();
  S.panel?.render();
}

async function loadMe() {
  const r = await conn.request({ code: 126, ocid: S.me });
  S.profile = r.profile;
  S.profiles.set(S.me, r.profile);
  renderMe();
}

// Friend requests this account sent and that wait: the server keeps them, but lists only the
// ones to answer, so the client remembers its own (per account, in this browser).
function outgoingKey() { return `natter.out.${S.me}`; }
function outgoingList() {
  try { return JSON.parse(localStorage.getItem(outgoingKey()) || '[]'); } catch { return []; }
}
function outgoing(ocid, add) {
  const l = new Set(outgoingList());
  if (add) l.add(ocid); else l.delete(ocid);
  localStorage.setItem(outgoingKey(), JSON.stringify([...l]));
}

// ---------- rendering: sidebar ----------

function renderMe() {
  const b = $('#me');
  b.replaceChildren(avatar(S.profile?.avatar, S.profile?.nickname), h('span', { class: 'me-name' }, S.profile?.nickname || ''));
}

function renderBadges() {
  const n = S.requestsIn.size + S.invitations.size + S.joinRequests.size;
  const b = $('#people-badge');
  b.hidden = n === 0;
  b.textContent = String(n);
  $('#people').setAttribute('aria-label', n ? `Friends and requests, ${n} waiting` : 'Friends and requests');
}

function sortedChats() {
  return [...S.chats.values()]
    .filter((c) => c.last || c.kind === 'g' || c.key === S.open)
    .sort((a, b) => (b.last?.time || 0) - (a.last?.time || 0) || (b.last?.cid || 0) - (a.last?.cid || 0));
}

function renderList() {
  if (S.search) return;
  const list = $('#list');
  const items = sortedChats().map((c) => {
    const name = chatName(c);
    const p = c.kind === 'p' ? profile(c.id) : null;
    const av = c.kind === 'p' ? p?.avatar : S.groups.get(c.id)?.avatar;
    const online = c.kind === 'p' && S.friends.get(c.id)?.online;
    const last = c.last;
    const who = last && c.kind === 'g' && last.type !== 0 ? `${Number(last.sender.ocid) === S.me ? 'You' : nameOf(last.sender.ocid)}: ` : '';
    const label = `${name}${online ? ', online' : ''}${c.unread ? `, ${c.unread} unread` : ''}`;
    return h('button', {
      class: `item${S.open === c.key ? ' active' : ''}`, dataset: { key: c.key }, 'aria-label': label,
      'aria-current': S.open === c.key ? 'true' : undefined, onclick: () => openChat(c.key),
    },
    h('span', { class: 'avatar-host' }, avatar(av, name), c.kind === 'p' && S.friends.has(c.id) ? h('span', { class: `dot${online ? ' on' : ''}`, title: online ? 'online' : 'offline' }) : null),
    h('span', { class: 'item-main' },
      h('span', { class: 'item-top' }, h('span', { class: 'item-name' }, name), h('time', {}, when(last?.time))),
      h('span', { class: 'item-bottom' },
        h('span', { class: 'preview' }, who + preview(last)),
        c.unread ? h('span', { class: 'badge', 'aria-hidden': 'true' }, String(c.unread)) : null)));
  });
  if (!items.length) items.push(h('p', { class: 'hint' }, 'No chats yet. Search for people or groups above.'));
  list.replaceChildren(...items);
}

async function runSearch(q) {
  q = q.trim();
  if (!q) { S.search = null; renderList(); return; }
  S.search = q;
  const asks = [conn.request({ code: 128, by: 'nickname', query: q.slice(0, 64) }).catch(() => null)];
  if (/^\d+$/.test(q)) asks.push(conn.request({ code: 128, by: 'ocid', query: q }).catch(() => null));
  if (q.includes('@')) asks.push(conn.request({ code: 128, by: 'email', query: q }).catch(() => null));
  if (/^[a-z][a-z0-9_.]{2,31}$/i.test(q)) asks.push(conn.request({ code: 128, by: 'username', query: q }).catch(() => null));
  if (/^\+?[\d\s().-]{6,}$/.test(q)) asks.push(conn.request({ code: 128, by: 'phone', query: q }).catch(() => null));
  const groups = conn.request({ code: 178, query: q.slice(0, 64) }).catch(() => null);
  const found = new Map();
  for (const r of await Promise.all(asks)) for (const a of r?.accounts || []) found.set(a.ocid, a);
  const g = await groups;
  if (S.search !== q) return;
  const people = [...found.values()].filter((a) => a.ocid !== S.me).map((a) => h('div', { class: 'item result' },
    avatar(a.avatar, a.nickname),
    h('span', { class: 'item-main' }, h('span', { class: 'item-name' }, a.nickname), h('span', { class: 'preview' }, a.username ? `@${a.username} · ` : '', `OC ${a.ocid}`)),
    h('span', { class: 'result-actions' },
      h('button', { class: 'small', 'aria-label': `Chat with ${a.nickname}`, onclick: () => { clearSearch(); openChat(`p${a.ocid}`); } }, 'Chat'),
      S.friends.has(a.ocid) ? null : h('button', { class: 'small secondary', 'aria-label': `Add ${a.nickname} as a friend`, onclick: () => addFriend(a.ocid, a.nickname) }, 'Add friend'))));
  const grs = (g?.groups || []).map((x) => h('div', { class: 'item result' },
    avatar(x.avatar, x.name),
    h('span', { class: 'item-main' }, h('span', { class: 'item-name' }, x.name), h('span', { class: 'preview' }, `${x.member_count} members · ${x.join_mode ? 'approval' : 'open'}`)),
    h('span', { class: 'result-actions' },
      h('button', { class: 'small', 'aria-label': `Open group ${x.name}`, onclick: () => groupPanel(x.group_id) }, 'View'))));
  $('#list').replaceChildren(...[
    h('h3', { class: 'section' }, 'People'), people.length ? people : h('p', { class: 'hint' }, 'Nobody found.'),
    h('h3', { class: 'section' }, 'Groups'), grs.length ? grs : h('p', { class: 'hint' }, 'No group found.')].flat());
}

function clearSearch() {
  $('#search').value = '';
  S.search = null;
  renderList();
}

// ---------- rendering: conversation ----------

function openChat(key) {
  const c = chat(key);
  S.open = key;
  document.body.classList.add('in-chat');
  $('#empty').hidden = true;
  $('#chat').hidden = false;
  c.nodes = new Map();
  $('#messages').replaceChildren();
  renderHead();
  renderList();
  renderTyping();
  if (c.oldest === null) loadOlder(c).then(() => renderMessages({ bottom: true }));
  renderMessages({ bottom: true });
  markRead(c);
  $('#text').focus();
}

function closeChat() {
  S.open = null;
  document.body.classList.remove('in-chat');
  $('#chat').hidden = true;
  $('#empty').hidden = false;
  renderList();
}

function renderHead() {
  const c = S.chats.get(S.open);
  if (!c) return;
  const name = chatName(c);
  let sub = '';
  if (c.kind === 'p') {
    const f = S.friends.get(c.id);
    sub = f ? (f.online ? 'online' : 'offline') : `OC ${c.id}`;
  } else {
    const g = S.groups.get(c.id);
    sub = g && !(g instanceof Promise) ? `${g.member_count} members` : 'group';
  }
  const av = c.kind === 'p' ? profile(c.id)?.avatar : S.groups.get(c.id)?.avatar;
  $('#chat-title').replaceChildren(avatar(av, name), h('span', { class: 'title-text' }, h('strong', {}, name), h('small', { id: 'chat-sub' }, sub)));
  $('#chat-title').setAttribute('aria-label', `${name}: details`);
}

function renderTyping() {
  const el = $('#typing');
  const t = S.typing.get(S.open);
  if (t && t.until > Date.now()) el.textContent = `${nameOf(t.ocid)} is typing…`;
  else el.textContent = '';
}

function tick(c, m) {
  if (Number(m.sender.ocid) !== S.me || m.type === 0) return null;
  const read = c.kind === 'p' && c.peerRead >= m.index;
  return h('span', { class: `tick${read ? ' read' : ''}`, title: read ? 'read' : 'sent', 'aria-label': read ? 'read' : 'sent' }, read ? '✓✓' : '✓');
}

function fileView(m) {
  const f = m.file;
  if (!f) return null;
  if (m.code === 1 || m.code === 2) {
    const img = h('img', {
      class: 'picture', alt: f.name || 'picture', tabindex: '0', role: 'button', 'aria-label': `Picture ${f.name}: enlarge`,
      width: f.width ? String(Math.min(f.width, 280)) : undefined,
    });
    if (f.width && f.height) img.style.aspectRatio = `${f.width} / ${f.height}`;
    link(f.id).then((u) => { img.src = u; }).catch(() => { img.alt = 'picture not available'; });
    const open = () => dialog(f.name || 'Picture', () => h('img', { class: 'large', src: img.src, alt: f.name || 'picture' }));
    img.addEventListener('click', open);
    img.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); open(); } });
    return img;
  }
  if (f.kind === 'voice') {
    const a = h('audio', { controls: true, preload: 'none', 'aria-label': `Voice note, ${Math.round((f.duration_ms || 0) / 1000)} seconds` });
    link(f.id).then((u) => { a.src = u; }).catch(() => {});
    return h('span', { class: 'voice' }, icon('mic'), a, h('small', {}, ` ${Math.round((f.duration_ms || 0) / 1000)} s`));
  }
  const a = h('a', { class: 'file', download: f.name, 'aria-label': `Download ${f.name}, ${size(f.size)}` },
    h('span', { class: 'file-icon' }, icon('file')),
    h('span', {}, h('span', { class: 'file-name' }, f.name), h('small', {}, size(f.size))));
  link(f.id).then((u) => { a.href = u; }).catch(() => {});
  return a;
}

function messageNode(c, m, showName) {
  if (m.type === 0) return h('div', { class: 'system', role: 'note' }, m.msg);
  const mine = Number(m.sender.ocid) === S.me;
  return h('div', { class: `msg${mine ? ' mine' : ''}`, dataset: { index: String(m.index) } },
    showName && !mine && c.kind === 'g' ? h('div', { class: 'who' }, nameOf(m.sender.ocid)) : null,
    h('div', { class: 'bubble' },
      fileView(m),
      m.msg ? h('div', { class: 'text' }, linkify(m.msg)) : null,
      h('div', { class: 'meta' }, h('time', {}, clock(m.time)), tick(c, m))));
}

function pendingNode(p, id) {
  const body = [];
  if (p.state === 'uploading') {
    body.push(h('div', { class: 'file-name' }, p.name), h('progress', { value: p.sent, max: p.total || 1, 'aria-label': `Uploading ${p.name}` }));
  } else if (p.file) {
    body.push(h('div', { class: 'file-name' }, icon('clip'), ` ${p.file.name}`));
  }
  if (p.frame?.msg) body.push(h('div', { class: 'text' }, linkify(p.frame.msg)));
  const status = p.state === 'failed' ? `not sent: ${p.error}` : (p.state === 'uploading' ? 'uploading' : 'sending');
  const node = h('div', { class: `msg mine pending${p.state === 'failed' ? ' failed' : ''}`, dataset: { pending: id } },
    h('div', { class: 'bubble' }, body,
      h('div', { class: 'meta' }, h('span', { class: 'tick', 'aria-label': status, title: status }, icon(p.state === 'failed' ? 'alert' : 'clock')),
        p.state === 'failed' ? h('button', { class: 'small link', onclick: () => { S.pending.delete(id); renderMessages({}); } }, 'dismiss') : null)));
  p.node = node;
  return node;
}

// Draw the open chat's messages, reusing the nodes already drawn (pictures are not reloaded).
function renderMessages({ keep = false, bottom = false }) {
  const c = S.chats.get(S.open);
  if (!c) return;
  const box = $('#messages');
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  const fromBottom = box.scrollHeight - box.scrollTop;
  const nodes = [];
  const next = new Map();
  let day = null;
  let prevSender = null;
  if (!c.complete && c.oldest !== null) nodes.push(h('div', { class: 'more' }, c.loading ? 'Loading…' : 'Scroll up for older messages'));
  const msgs = [...c.msgs.values()].sort((a, b) => a.index - b.index);
  for (const m of msgs) {
    const d = dayKey(m.time);
    if (d !== day) {
      nodes.push(h('div', { class: 'day', role: 'separator' }, dayLabel(m.time)));
      day = d;
      prevSender = null;
    }
    const showName = prevSender !== m.sender.ocid;
    const k = `${m.index}:${showName}:${Number(m.sender.ocid) === S.me && c.kind === 'p' ? c.peerRead >= m.index : ''}:${S.profiles.get(Number(m.sender.ocid)) instanceof Promise}`;
    let node = c.nodes.get(k);
    if (!node) node = messageNode(c, m, showName);
    next.set(k, node);
    nodes.push(node);
    prevSender = m.type === 0 ? null : m.sender.ocid;
  }
  for (const [id, p] of S.pending) if (p.key === c.key) nodes.push(pendingNode(p, id));
  c.nodes = next;
  box.replaceChildren(...nodes);
  if (bottom || (!keep && nearBottom)) box.scrollTop = box.scrollHeight;
  else if (keep) box.scrollTop = box.scrollHeight - fromBottom;
  if (c.msgs.size && S.open === c.key && visible() && maxIndex(c) > c.read) markRead(c);
}

// ---------- panels ----------

// A dialog whose body is drawn by `draw()`; a `live` one (lists, not forms being filled in) is
// drawn again whenever something it shows changes.
function panel(title, draw, { live = true } = {}) {
  const body = h('div', { class: 'modal-body' });
  const d = h('dialog', { class: 'modal panel', 'aria-label': title });
  const me = {
    render: () => {
      const content = draw(me);
      if (content) body.replaceChildren(...[content].flat(Infinity).filter((x) => x !== null && x !== undefined && x !== false));
    },
    close: () => d.close(),
  };
  d.append(h('header', {}, h('h2', {}, title), h('button', { class: 'icon', 'aria-label': 'Close', onclick: () => d.close() }, icon('close'))), body);
  d.addEventListener('close', () => { d.remove(); if (S.panel === me) S.panel = null; });
  document.body.append(d);
  S.panel = live ? me : null;
  me.render();
  d.showModal();
  return me;
}

async function act(p, ok) {
  try {
    const r = await p;
    if (ok) toast(ok);
    return r;
  } catch (e) {
    toast(e.message);
    return null;
  }
}

async function addFriend(ocid, name) {
  const note = await prompt(`Add ${name}`, 'A note for them (optional)', '', 256);
  if (note === undefined) return;
  const r = await act(conn.request({ code: 111, ocid, msg: note }));
  if (!r) return;
  if (r.state === 0) { outgoing(ocid, true); toast('Friend request sent'); }
  else { S.friends.set(ocid, { online: false }); toast('You are now friends'); loadPeople(); }
  S.panel?.render();
}

function person(ocid, ...actions) {
  const p = profile(ocid);
  const online = S.friends.get(ocid)?.online;
  return h('li', { class: 'person' },
    h('span', { class: 'avatar-host' }, avatar(p?.avatar, nameOf(ocid)), S.friends.has(ocid) ? h('span', { class: `dot${online ? ' on' : ''}` }) : null),
    h('span', { class: 'person-name' }, nameOf(ocid), p?.remark ? h('small', {}, ` (${p.nickname})`) : null, h('small', { class: 'ocid' }, ` OC ${ocid}`)),
    h('span', { class: 'person-actions' }, actions));
}

function peoplePanel() {
  panel('Friends and requests', () => {
    const out = outgoingList();
    return [
      h('section', { 'aria-label': 'Friend requests' }, h('h3', {}, 'Friend requests'),
        S.requestsIn.size ? h('ul', { class: 'people' }, [...S.requestsIn].map(([ocid, q]) => person(ocid,
          q.msg ? h('q', {}, q.msg) : null,
          h('button', { class: 'small', 'aria-label': `Accept ${nameOf(ocid)}`, onclick: async () => { if (await act(conn.request({ code: 113, ocid, accept: true }), 'Accepted')) { S.requestsIn.delete(ocid); loadPeople(); } } }, 'Accept'),
          h('button', { class: 'small secondary', 'aria-label': `Reject ${nameOf(ocid)}`, onclick: async () => { if (await act(conn.request({ code: 113, ocid, accept: false }))) { S.requestsIn.delete(ocid); renderBadges(); S.panel?.render(); } } }, 'Reject')))) : h('p', { class: 'hint' }, 'None waiting.'),
        out.length ? [h('h4', {}, 'Sent, waiting for an answer'), h('ul', { class: 'people' }, out.map((o) => person(o)))] : null),
      S.invitations.size ? h('section', {}, h('h3', {}, 'Group invitations'), h('ul', { class: 'people' }, [...S.invitations.values()].map((i) => h('li', { class: 'person' },
        h('span', { class: 'person-name' }, `${nameOf(i.by)} invites you to group ${S.groups.get(i.group_id)?.name || i.group_id}`),
        h('span', { class: 'person-actions' },
          h('button', { class: 'small', onclick: async () => { if (await act(conn.request({ code: 162, group_id: i.group_id, accept: true }), 'Joined')) { S.invitations.delete(i.group_id); renderBadges(); loadChats(); S.panel?.render(); } } }, 'Join'),
          h('button', { class: 'small secondary', onclick: async () => { if (await act(conn.request({ code: 162, group_id: i.group_id, accept: false }))) { S.invitations.delete(i.group_id); renderBadges(); S.panel?.render(); } } }, 'Decline')))))) : null,
      S.joinRequests.size ? h('section', {}, h('h3', {}, 'Requests to join your groups'), h('ul', { class: 'people' }, [...S.joinRequests.values()].map((q) => joinRequestItem(q)))) : null,
      h('section', { 'aria-label': 'Friends' }, h('h3', {}, `Friends (${S.friends.size})`),
        S.friends.size ? h('ul', { class: 'people' }, [...S.friends.keys()].sort((a, b) => a - b).map((ocid) => person(ocid,
          h('button', { class: 'small', 'aria-label': `Chat with ${nameOf(ocid)}`, onclick: () => { S.panel.close(); openChat(`p${ocid}`); } }, 'Chat'),
          h('button', { class: 'small secondary', 'aria-label': `Set a remark for ${nameOf(ocid)}`, onclick: async () => {
            const r = await prompt('Remark', 'A private name for this friend', profile(ocid)?.remark || '', 64);
            if (r !== undefined && await act(conn.request({ code: 144, ocid, remark: r }))) { S.profiles.delete(ocid); profile(ocid); }
          } }, 'Remark'),
          h('button', { class: 'small secondary', 'aria-label': `Remove ${nameOf(ocid)}`, onclick: async () => {
            if (await confirmBox('Remove friend', `Remove ${nameOf(ocid)} from your friends?`, 'Remove') && await act(conn.request({ code: 115, ocid }))) { S.friends.delete(ocid); S.profiles.delete(ocid); S.panel?.render(); renderList(); }
          } }, 'Remove'),
          h('button', { class: 'small danger', 'aria-label': `Block ${nameOf(ocid)}`, onclick: async () => {
            if (await confirmBox('Block', `Block ${nameOf(ocid)}? Their messages and requests will be refused.`, 'Block') && await act(conn.request({ code: 146, ocid, block: true }))) { S.friends.delete(ocid); S.blocked.add(ocid); S.profiles.delete(ocid); S.panel?.render(); renderList(); }
          } }, 'Block')))) : h('p', { class: 'hint' }, 'No friends yet: search for people and add them.')),
      S.blocked.size ? h('section', {}, h('h3', {}, 'Blocked'), h('ul', { class: 'people' }, [...S.blocked].map((ocid) => person(ocid,
        h('button', { class: 'small secondary', onclick: async () => { if (await act(conn.request({ code: 146, ocid, block: false }))) { S.blocked.delete(ocid); S.panel?.render(); } } }, 'Unblock'))))) : null,
    ];
  });
}

function joinRequestItem(q) {
  const g = S.groups.get(q.group_id);
  const gname = g && !(g instanceof Promise) ? g.name : `group ${q.group_id}`;
  const answer = async (accept) => {
    if (await act(conn.request({ code: 156, group_id: q.group_id, ocid: q.ocid, accept }), accept ? 'Approved' : 'Declined')) {
      S.joinRequests.delete(`${q.group_id}:${q.ocid}`);
      S.groups.delete(q.group_id);
      renderBadges();
      S.panel?.render();
    }
  };
  return person(q.ocid, h('small', {}, `asks to join ${gname}`), q.msg ? h('q', {}, q.msg) : null,
    h('button', { class: 'small', 'aria-label': `Approve ${nameOf(q.ocid)}`, onclick: () => answer(true) }, 'Approve'),
    h('button', { class: 'small secondary', 'aria-label': `Decline ${nameOf(q.ocid)}`, onclick: () => answer(false) }, 'Decline'));
}

function newGroupPanel() {
  const chosen = new Set();
  const name = h('input', { name: 'name', maxlength: '128', required: true, 'aria-label': 'Group name' });
  panel('New group', (me) => h('form', {
    onsubmit: async (e) => {
      e.preventDefault();
      const r = await act(conn.request({ code: 8, name: name.value.trim(), members: [...chosen] }));
      if (!r) return;
      if (!r.success) { toast(r.msg); return; }
      me.close();
      const c = chat(`g${r.group_id}`);
      c.name = name.value.trim();
      c.last = null;
      openChat(c.key);
    },
  },
  h('label', {}, 'Name ', name),
  h('fieldset', {}, h('legend', {}, 'Members from your friends'),
    S.friends.size ? [...S.friends.keys()].map((ocid) => h('label', { class: 'check' },
      h('input', { type: 'checkbox', checked: chosen.has(ocid), onchange: (e) => { if (e.target.checked) chosen.add(ocid); else chosen.delete(ocid); } }), ` ${nameOf(ocid)}`)) : h('p', { class: 'hint' }, 'Add friends to pick them here; others can join later.')),
  h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Create group'))));
}

function groupPanel(id) {
  let g = null;
  let requests = [];
  const load = async () => {
    try {
      g = await groupInfo(id, true);
      if (g.role === 'owner' || g.role === 'admin') requests = (await conn.request({ code: 158, group_id: id })).requests;
      const c = S.chats.get(`g${id}`);
      if (c) { c.name = g.name; renderList(); if (S.open === c.key) renderHead(); }
    } catch (e) { toast(e.message); }
    me.render();
  };
  const me = panel('Group', () => {
    if (!g) return h('p', {}, 'Loading…');
    const admin = g.role === 'owner' || g.role === 'admin';
    const owner = g.role === 'owner';
    const roleOf = (o) => (o === g.owner ? 'owner' : g.admins.includes(o) ? 'admin' : 'member');
    const pick = h('input', { type: 'file', accept: PICTURES.join(','), hidden: true, onchange: async (e) => {
      const f = e.target.files[0];
      if (!f) return;
      const fid = await act(upload(f, conn.token));
      if (fid && await act(conn.request({ code: 152, group_id: id, avatar: `/files/${fid}` }), 'Avatar changed')) load();
    } });
    return [
      h('div', { class: 'group-head' }, avatar(g.avatar, g.name, 'avatar big'),
        h('div', {}, h('h3', { class: 'group-name' }, g.name), h('p', {}, `${g.member_count} members · ${g.join_mode ? 'an admin approves who joins' : 'anyone may join'}`),
          g.description ? h('p', {}, g.description) : null)),
      g.role === null ? h('div', { class: 'actions' },
        S.invitations.has(id) ? h('button', { onclick: async () => { if (await act(conn.request({ code: 162, group_id: id, accept: true }), 'Joined')) { S.invitations.delete(id); await loadChats(); me.close(); openChat(`g${id}`); } } }, 'Accept invitation') : null,
        h('button', { onclick: async () => {
          const note = await prompt('Ask to join', 'A note for the admins (optional)', '', 256);
          if (note === undefined) return;
          const r = await act(conn.request({ code: 154, group_id: id, msg: note }));
          if (r?.state === 0) { toast('You joined'); await loadChats(); me.close(); openChat(`g${id}`); } else if (r) toast('Your request waits for an admin');
        } }, 'Ask to join')) : h('div', { class: 'actions' },
        h('button', { onclick: () => { me.close(); openChat(`g${id}`); } }, 'Open chat'),
        admin ? h('button', { class: 'secondary', onclick: async () => {
          const n = await prompt('Rename group', 'Name', g.name, 128);
          if (n && await act(conn.request({ code: 152, group_id: id, name: n }))) load();
        } }, 'Rename') : null,
        admin ? h('label', { class: 'button secondary' }, 'Change avatar', pick) : null,
        admin ? h('button', { class: 'secondary', onclick: async () => { if (await act(conn.request({ code: 152, group_id: id, join_mode: g.join_mode ? 0 : 1 }))) load(); } }, g.join_mode ? 'Let anyone join' : 'Approve who joins') : null,
        !owner ? h('button', { class: 'danger', onclick: async () => {
          if (await confirmBox('Leave group', `Leave ${g.name}?`, 'Leave') && await act(conn.request({ code: 166, group_id: id }))) { S.chats.delete(`g${id}`); if (S.open === `g${id}`) closeChat(); renderList(); me.close(); }
        } }, 'Leave') : h('button', { class: 'danger', onclick: async () => {
          if (await confirmBox('Disband group', `Disband ${g.name} for everyone?`, 'Disband') && await act(conn.request({ code: 174, group_id: id }))) { S.chats.delete(`g${id}`); if (S.open === `g${id}`) closeChat(); renderList(); me.close(); }
        } }, 'Disband')),
      admin && requests.length ? h('section', {}, h('h3', {}, 'Requests to join'), h('ul', { class: 'people' }, requests.map((q) => person(q.ocid, q.msg ? h('q', {}, q.msg) : null,
        h('button', { class: 'small', 'aria-label': `Approve ${nameOf(q.ocid)}`, onclick: async () => { if (await act(conn.request({ code: 156, group_id: id, ocid: q.ocid, accept: true }), 'Approved')) { S.joinRequests.delete(`${id}:${q.ocid}`); renderBadges(); load(); } } }, 'Approve'),
        h('button', { class: 'small secondary', 'aria-label': `Decline ${nameOf(q.ocid)}`, onclick: async () => { if (await act(conn.request({ code: 156, group_id: id, ocid: q.ocid, accept: false }))) { S.joinRequests.delete(`${id}:${q.ocid}`); renderBadges(); load(); } } }, 'Decline'))))) : null,
      g.members ? h('section', {}, h('h3', {}, 'Members'),
        (admin || g.join_mode === 0) ? h('form', { class: 'inline', onsubmit: async (e) => {
          e.preventDefault();
          const v = e.target.elements.ocid.value.trim();
          if (v && await act(conn.request({ code: 160, group_id: id, ocid: v }), 'Invited')) e.target.reset();
        } }, h('input', { name: 'ocid', inputmode: 'numeric', placeholder: 'OC number', 'aria-label': 'OC number to invite' }), h('button', { type: 'submit', class: 'small' }, 'Invite')) : null,
        h('ul', { class: 'people' }, g.members.map((o) => person(o, h('small', { class: 'role' }, roleOf(o)),
          owner && o !== S.me ? h('button', { class: 'small secondary', onclick: async () => { if (await act(conn.request({ code: 170, group_id: id, ocid: o, admin: roleOf(o) !== 'admin' }))) load(); } }, roleOf(o) === 'admin' ? 'Make member' : 'Make admin') : null,
          o !== S.me && o !== g.owner && (owner || (admin && roleOf(o) === 'member')) ? h('button', { class: 'small danger', 'aria-label': `Remove ${nameOf(o)} from the group`, onclick: async () => {
            if (await confirmBox('Remove member', `Remove ${nameOf(o)} from ${g.name}?`, 'Remove') && await act(conn.request({ code: 168, group_id: id, ocid: o }))) load();
          } }, 'Remove') : null)))) : null,
    ];
  });
  load();
}

function profilePanel() {
  let preview = null;
  let file = null;
  panel('My profile', (me) => {
    const p = S.profile || {};
    const pic = h('span', {}, preview ? h('img', { class: 'avatar big', src: preview, alt: 'new avatar' }) : avatar(p.avatar, p.nickname, 'avatar big'));
    const form = h('form', { onsubmit: async (e) => {
      e.preventDefault();
      const el = e.target.elements;
      const q = { code: 124, nickname: el.nickname.value, signature: el.signature.value, status_text: el.status_text.value };
      if (file) {
        const fid = await act(upload(file, conn.token));
        if (!fid) return;
        q.avatar = `/files/${fid}`;
      }
      const r = await act(conn.request(q), 'Profile saved');
      if (r) { S.profile = r.profile; S.profiles.set(S.me, r.profile); file = null; preview = null; renderMe(); me.render(); }
    } },
    h('div', { class: 'group-head' }, pic, h('label', { class: 'button secondary' }, 'Choose a picture',
      h('input', { type: 'file', accept: PICTURES.join(','), hidden: true, onchange: (e) => {
        file = e.target.files[0] || null;
        if (preview) URL.revokeObjectURL(preview);
        preview = file ? URL.createObjectURL(file) : null;
        // Only the picture changes: what is typed in the fields stays.
        pic.replaceChildren(preview ? h('img', { class: 'avatar big', src: preview, alt: 'new avatar' }) : avatar(p.avatar, p.nickname, 'avatar big'));
      } }))),
    h('p', {}, `OC number ${p.ocid}`, p.username ? ` · @${p.username}` : '', p.email ? ` · ${p.email}` : '', p.phone ? ` · ${p.phone}` : ''),
    h('label', {}, 'Nickname ', h('input', { name: 'nickname', value: p.nickname || '', maxlength: '64', required: true })),
    h('label', {}, 'Signature ', h('input', { name: 'signature', value: p.signature || '', maxlength: '256' })),
    h('label', {}, 'Status ', h('input', { name: 'status_text', value: p.status_text || '', maxlength: '128' })),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Save')));
    return form;
  }, { live: false });
}

function settingsPanel() {
  let logins = null;
  const loadLogins = async () => {
    const r = await act(conn.request({ code: 138 }));
    logins = r?.logins || [];
    me.render();
  };
  const me = panel('Settings', () => [
    h('section', {}, h('h3', {}, 'Notifications'),
      !('Notification' in window) ? h('p', {}, 'This browser does not show notifications.')
        : Notification.permission === 'granted' ? h('p', {}, 'Desktop notifications are on while this tab is hidden.')
          : h('button', { class: 'secondary', onclick: async () => { await Notification.requestPermission(); me.render(); } }, 'Show desktop notifications')),
    h('section', {}, h('h3', {}, 'Change password'), h('form', { onsubmit: async (e) => {
      e.preventDefault();
      const el = e.target.elements;
      if (el.new_password.value !== el.again.value) { toast('The new passwords differ'); return; }
      const r = await act(conn.request({ code: 130, old_password: el.old_password.value, new_password: el.new_password.value, keep_others: el.keep.checked }));
      if (r) { toast(`Password changed; ${r.ended} other login(s) ended`); e.target.reset(); loadLogins(); }
    } },
    h('label', {}, 'Current password ', h('input', { name: 'old_password', type: 'password', autocomplete: 'current-password', required: true })),
    h('label', {}, 'New password ', h('input', { name: 'new_password', type: 'password', autocomplete: 'new-password', required: true })),
    h('label', {}, 'New password again ', h('input', { name: 'again', type: 'password', autocomplete: 'new-password', required: true })),
    h('label', { class: 'check' }, h('input', { name: 'keep', type: 'checkbox' }), ' Keep my other logins'),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Change password')))),
    h('section', {}, h('h3', {}, 'Security question'),
      h('p', { class: 'hint' }, S.profile?.security_question ? `Now: ${S.profile.security_question}` : 'None set: without one, a forgotten password cannot be reset.'),
      h('form', { onsubmit: async (e) => {
        e.preventDefault();
        const el = e.target.elements;
        const r = await act(conn.request({ code: 132, password: el.password.value, question: el.question.value, answer: el.answer.value }), 'Security question saved');
        if (r) { S.profile.security_question = r.question; e.target.reset(); me.render(); }
      } },
      h('label', {}, 'Question ', h('input', { name: 'question', maxlength: '256', required: true })),
      h('label', {}, 'Answer ', h('input', { name: 'answer', maxlength: '256', required: true })),
      h('label', {}, 'Password ', h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
      h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Save question')))),
    h('section', {}, h('h3', {}, 'Logins'),
      logins === null ? h('p', {}, 'Loading…') : h('ul', { class: 'people' }, logins.map((l) => h('li', { class: 'person' },
        h('span', { class: 'person-name' }, `Since ${new Date(l.time * 1000).toLocaleString()}`, l.current ? h('strong', {}, ' (this one)') : null,
          h('small', {}, ` · expires ${new Date(l.expires * 1000).toLocaleDateString()}`)),
        h('span', { class: 'person-actions' }, h('button', { class: 'small danger', 'aria-label': `End the login made ${new Date(l.time * 1000).toLocaleString()}`, onclick: async () => {
          if (await confirmBox('End login', l.current ? 'End this login? You will be logged out here.' : 'End that login? Its devices are logged out.', 'End') && await act(conn.request({ code: 140, id: l.id }), 'Login ended')) loadLogins();
        } }, 'End')))))),
    h('div', { class: 'actions' }, h('button', { class: 'danger', id: 'logout', onclick: logout }, 'Log out')),
  ], { live: false });
  loadLogins();
}

async function logout() {
  try { await conn.raw({ code: 109 }, 5000); } catch { /* the token is forgotten here anyway */ }
  conn.stop();
  localStorage.removeItem(TOKEN);
  location.reload();
}

// ---------- the login screen ----------

function showAuth() {
  $('#app').hidden = true;
  $('#auth').hidden = false;
  const tabs = { login: $('#tab-login'), register: $('#tab-register') };
  const forms = { login: $('#login-form'), register: $('#register-form') };
  const pick = (which) => {
    for (const k of Object.keys(tabs)) {
      tabs[k].setAttribute('aria-selected', String(k === which));
      forms[k].hidden = k !== which;
    }
    $('#auth-error').textContent = '';
    forms[which].elements.account.focus();
  };
  tabs.login.onclick = () => pick('login');
  tabs.register.onclick = () => pick('register');
  const fail = (text) => { $('#auth-error').textContent = text; };
  forms.login.onsubmit = async (e) => {
    e.preventDefault();
    const el = e.target.elements;
    try {
      const r = await conn.login(Number(el.kind.value), el.account.value.trim(), el.password.value);
      if (r.state === 0) enter(r.token);
      else fail(r.state === 1 ? 'Wrong account or password.' : 'The server failed; try again.');
    } catch (err) { fail(err.message); }
  };
  forms.register.onsubmit = async (e) => {
    e.preventDefault();
    const el = e.target.elements;
    const kind = el.kind.value;
    const account = el.account.value.trim();
    const fields = { [kind]: account, password: el.password.value };
    if (el.name.value.trim()) fields.name = el.name.value.trim();
    try {
      const r = await conn.register(fields);
      if (r.state === 2) { fail('That email address is already registered.'); return; }
      if (r.state !== 0) { fail('The server failed; try again.'); return; }
      const l = await conn.login({ email: 0, username: 2, phone: 3 }[kind], account, el.password.value);
      if (l.state === 0) enter(l.token);
      else fail('Registered, but the login failed: try logging in.');
    } catch (err) { fail(err.message); }
  };
  $('#forgot').onclick = forgot;
  pick('login');
}

function forgot() {
  dialog('Reset your password', (close) => {
    const form = h('form', {});
    let step = 1;
    const kind = h('select', { name: 'kind', 'aria-label': 'Account kind' }, h('option', { value: '0' }, 'Email'), h('option', { value: '2' }, 'Username'), h('option', { value: '3' }, 'Phone'));
    const account = h('input', { name: 'account', required: true, 'aria-label': 'Account' });
    const question = h('p', {});
    const answer = h('input', { name: 'answer', 'aria-label': 'Answer' });
    const pw = h('input', { name: 'pw', type: 'password', autocomplete: 'new-password', 'aria-label': 'New password' });
    const later = h('div', { hidden: true }, question, h('label', {}, 'Answer ', answer), h('label', {}, 'New password ', pw));
    const err = h('p', { class: 'error', role: 'alert' });
    form.append(h('label', {}, 'Account kind ', kind), h('label', {}, 'Account ', account), later, err, h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Continue')));
    form.onsubmit = async (e) => {
      e.preventDefault();
      try {
        await conn.open();
        if (step === 1) {
          const r = await conn.raw({ code: 136, login_type: Number(kind.value), account: account.value.trim() });
          question.textContent = r.question;
          later.hidden = false;
          step = 2;
        } else {
          await conn.raw({ code: 134, login_type: Number(kind.value), account: account.value.trim(), answer: answer.value, new_password: pw.value });
          toast('Password changed: log in with the new one.');
          close();
        }
      } catch (x) { err.textContent = x.message; }
    };
    return form;
  });
}

// ---------- entering the app ----------

async function enter(token) {
  localStorage.setItem(TOKEN, token);
  S.me = conn.ocid;
  $('#auth').hidden = true;
  $('#app').hidden = false;
  everOnline = true;
  await Promise.all([loadMe(), loadChats(), loadPeople()]).catch((e) => toast(e.message));
}

function wire() {
  $('#me').onclick = profilePanel;
  $('#people').onclick = peoplePanel;
  $('#new-group').onclick = newGroupPanel;
  $('#settings').onclick = settingsPanel;
  $('#back').onclick = closeChat;
  $('#chat-title').onclick = () => {
    const c = S.chats.get(S.open);
    if (!c) return;
    if (c.kind === 'g') groupPanel(c.id);
    else personPanel(c.id);
  };
  let searchTimer;
  $('#search').addEventListener('input', (e) => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => runSearch(e.target.value), 300);
  });
  $('#search-form').onsubmit = (e) => { e.preventDefault(); runSearch($('#search').value); };
  $('#search').addEventListener('keydown', (e) => { if (e.key === 'Escape') clearSearch(); });
  const text = $('#text');
  let lastTyping = 0;
  text.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $('#composer').requestSubmit();
    }
  });
  text.addEventListener('input', () => {
    text.style.height = 'auto';
    text.style.height = `${Math.min(text.scrollHeight, 160)}px`;
    const c = S.chats.get(S.open);
    if (c && Date.now() - lastTyping > TYPING_EVERY_MS && text.value) {
      lastTyping = Date.now();
      conn.notify({ code: 121, ...target(c) });
    }
  });
  text.addEventListener('paste', (e) => {
    const files = [...(e.clipboardData?.files || [])];
    if (files.length) { e.preventDefault(); files.forEach(sendFile); }
  });
  $('#composer').onsubmit = (e) => {
    e.preventDefault();
    const v = text.value;
    if (!v.trim()) return;
    text.value = '';
    text.style.height = 'auto';
    lastTyping = 0;
    sendText(v);
  };
  $('#file').onchange = (e) => { [...e.target.files].forEach(sendFile); e.target.value = ''; };
  const chatEl = $('#chat');
  chatEl.addEventListener('dragover', (e) => { e.preventDefault(); $('#drop').hidden = false; });
  chatEl.addEventListener('dragleave', (e) => { if (!chatEl.contains(e.relatedTarget)) $('#drop').hidden = true; });
  chatEl.addEventListener('drop', (e) => {
    e.preventDefault();
    $('#drop').hidden = true;
    [...(e.dataTransfer?.files || [])].forEach(sendFile);
  });
  $('#messages').addEventListener('scroll', (e) => {
    const c = S.chats.get(S.open);
    if (c && e.target.scrollTop < 60 && !c.complete && !c.loading) loadOlder(c);
  });
  document.addEventListener('visibilitychange', () => {
    const c = S.chats.get(S.open);
    if (c && visible()) { markRead(c); renderList(); }
  });
  document.addEventListener('keydown', (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'k') { e.preventDefault(); $('#search').focus(); }
    if (e.altKey && (e.key === 'ArrowUp' || e.key === 'ArrowDown')) {
      e.preventDefault();
      const l = sortedChats();
      const i = l.findIndex((c) => c.key === S.open);
      const n = l[Math.max(0, Math.min(l.length - 1, i + (e.key === 'ArrowUp' ? -1 : 1)))];
      if (n) openChat(n.key);
    }
    if (e.key === 'Escape' && !document.querySelector('dialog[open]') && S.open && document.activeElement !== $('#search')) closeChat();
  });
}

function personPanel(ocid) {
  panel('Profile', () => {
    const p = profile(ocid);
    if (!p) return h('p', {}, 'Loading…');
    const friend = S.friends.has(ocid);
    return [
      h('div', { class: 'group-head' }, avatar(p.avatar, p.nickname, 'avatar big'),
        h('div', {}, h('h3', {}, p.nickname, p.remark ? h('small', {}, ` (${p.remark})`) : null),
          h('p', {}, `OC ${p.ocid}`, p.username ? ` · @${p.username}` : ''),
          p.signature ? h('p', { class: 'signature' }, p.signature) : null,
          p.status_text ? h('p', {}, p.status_text) : null)),
      h('div', { class: 'actions' },
        friend ? h('span', {}, S.friends.get(ocid).online ? '● online' : '○ offline')
          : h('button', { onclick: () => addFriend(ocid, p.nickname) }, 'Add friend'),
        S.blocked.has(ocid)
          ? h('button', { class: 'secondary', onclick: async () => { if (await act(conn.request({ code: 146, ocid, block: false }))) { S.blocked.delete(ocid); S.panel?.render(); } } }, 'Unblock')
          : h('button', { class: 'danger', onclick: async () => { if (await confirmBox('Block', `Block ${p.nickname}?`, 'Block') && await act(conn.request({ code: 146, ocid, block: true }))) { S.blocked.add(ocid); S.friends.delete(ocid); S.profiles.delete(ocid); S.panel?.render(); renderList(); } } }, 'Block')),
    ];
  });
}

async function start() {
  icons();
  wire();
  const token = localStorage.getItem(TOKEN);
  if (token) {
    // Show the app at once (it says "Connecting…"); the server may be out of reach for a while.
    $('#app').hidden = false;
    if (await conn.restore(token)) {
      enter(token);
      return;
    }
    $('#app').hidden = true;
  }
  localStorage.removeItem(TOKEN);
  showAuth();
}

start();
