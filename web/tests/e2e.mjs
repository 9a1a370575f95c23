// End-to-end test of natter's web client in headless Chromium: usage `node e2e.mjs <base URL>`.
// Three people register in three browser contexts (by email, username and phone), become
// friends and chat both ways, send a picture, make a group of three with a join request
// approved, reload, lose and regain the network, and hear from a plain OurChat v1 client.
// Exits non-zero on the first failure. CHROMIUM names the browser (default
// /usr/bin/chromium); NATTER_SCREENSHOTS, a directory where the screens are saved as PNG.

import { chromium } from 'playwright-core';
import WebSocket from 'ws';
import { deflateSync } from 'node:zlib';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const base = process.argv[2];
if (!base) {
  console.error('usage: node e2e.mjs http://host:port');
  process.exit(2);
}
const WAIT = 30000;
// Messages in the chat whose history is paged (more than two pages of 50).
const HISTORY = 120;
// The whole run gives up after 9 minutes, whatever hangs.
setTimeout(() => {
  console.error(`e2e: FAILED: the run took too long (at "${step}")`);
  process.exit(1);
}, 540000).unref();
const shots = process.env.NATTER_SCREENSHOTS;
if (shots) mkdirSync(shots, { recursive: true });

const problems = [];
let step = 'start';
function log(s) {
  step = s;
  console.log(`e2e: ${s}`);
}

async function shot(page, name) {
  if (!shots) return;
  await page.evaluate(() => { document.getElementById('toast').hidden = true; });
  await page.screenshot({ path: join(shots, `${name}.png`) });
}

// A PNG of w×h pixels in two colours, made here so the test needs no file.
function png(w, h) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    out.write(type, 4, 'ascii');
    data.copy(out, 8);
    out.writeUInt32BE(crc(out.subarray(4, 8 + data.length)), 8 + data.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = y * (w * 3 + 1) + 1 + x * 3;
      const sky = y < h * 0.6;
      raw[o] = sky ? 70 : 230;
      raw[o + 1] = sky ? 150 : 190;
      raw[o + 2] = sky ? 230 : 90;
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0)),
  ]);
}

// A WAV of `ms` milliseconds of a quiet tone, 8 kHz, 16-bit mono.
function wav(ms) {
  const n = Math.round(8 * ms);
  const out = Buffer.alloc(44 + n * 2);
  out.write('RIFF', 0, 'ascii');
  out.writeUInt32LE(36 + n * 2, 4);
  out.write('WAVEfmt ', 8, 'ascii');
  out.writeUInt32LE(16, 16);
  out.writeUInt16LE(1, 20);
  out.writeUInt16LE(1, 22);
  out.writeUInt32LE(8000, 24);
  out.writeUInt32LE(16000, 28);
  out.writeUInt16LE(2, 32);
  out.writeUInt16LE(16, 34);
  out.write('data', 36, 'ascii');
  out.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) out.writeInt16LE(Math.round(2000 * Math.sin(i / 4)), 44 + i * 2);
  return out;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
});

async function person(name, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 720 }, ...options });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.on('pageerror', (e) => problems.push(`${name}: page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource|WebSocket connection to .* failed|ERR_INTERNET_DISCONNECTED/.test(m.text())) {
      problems.push(`${name}: console error: ${m.text()}`);
    }
  });
  await page.goto(base);
  return { name, context, page };
}

async function register(p, kind, account, nickname, password) {
  const { page } = p;
  await page.locator('#auth').waitFor();
  await page.click('#tab-register');
  const f = page.locator('#register-form');
  await f.locator('select[name=kind]').selectOption(kind);
  await f.locator('input[name=account]').fill(account);
  await f.locator('input[name=name]').fill(nickname);
  await f.locator('input[name=password]').fill(password);
  await f.locator('button[type=submit]').click();
  await page.locator('#app').waitFor();
  await page.locator('#status[data-state=online]').waitFor({ state: 'attached' });
  await page.locator('#me', { hasText: nickname }).waitFor();
}

async function search(page, q) {
  await page.fill('#search', q);
  await page.press('#search', 'Enter');
}

async function send(page, text) {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
}

// The open conversation's delivered message with exactly `text`.
function message(page, text) {
  return page.locator('#messages .msg:not(.pending) .text', { hasText: new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) });
}

async function count(page, text) {
  return message(page, text).count();
}

async function until(what, fn, ms = WAIT) {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function closeDialog(page) {
  await page.keyboard.press('Escape');
  await page.locator('dialog[open]').waitFor({ state: 'detached' });
}

// The chat list's entry named exactly `name`.
function chatItem(page, name) {
  return page.locator('#list .item').filter({ has: page.locator('.item-name', { hasText: new RegExp(`^${name}$`) }) });
}

async function openChatItem(page, name) {
  await chatItem(page, name).click();
  await page.locator('#chat-title', { hasText: name }).waitFor();
}

// A plain OurChat v1 client (no browser): JSON frames over WebSocket at /ws.
function v1Client() {
  const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/ws`);
  const frames = [];
  const waiters = [];
  ws.on('message', (d) => {
    const f = JSON.parse(String(d));
    frames.push(f);
    for (const w of [...waiters]) w();
  });
  const open = new Promise((r, j) => { ws.on('open', r); ws.on('error', j); });
  return {
    async request(frame, code) {
      await open;
      const id = Math.floor(Math.random() * 1e9);
      ws.send(JSON.stringify({ ...frame, request_id: id }));
      const end = Date.now() + WAIT;
      for (;;) {
        const i = frames.findIndex((f) => f.request_id === id);
        if (i >= 0) {
          const f = frames.splice(i, 1)[0];
          if (f.code !== code) throw new Error(`v1 client: expected code ${code}, got ${JSON.stringify(f)}`);
          return f;
        }
        if (Date.now() > end) throw new Error(`v1 client: no reply to ${JSON.stringify(frame)}`);
        await new Promise((r) => { waiters.push(r); setTimeout(r, 200); });
      }
    },
    // The next pushed frame (no request_id) with this code.
    async push(code) {
      const end = Date.now() + WAIT;
      for (;;) {
        const i = frames.findIndex((f) => f.request_id === undefined && f.code === code);
        if (i >= 0) return frames.splice(i, 1)[0];
        if (Date.now() > end) throw new Error(`v1 client: no push ${code}: ${JSON.stringify(frames)}`);
        await new Promise((r) => { waiters.push(r); setTimeout(r, 200); });
      }
    },
    close() { ws.close(); },
  };
}

try {
  log('the page loads with its strict policy and no inline code');
  const alice = await person('alice');
  const head = await (await fetch(base)).headers;
  const csp = head.get('content-security-policy') || '';
  if (!csp.includes("script-src 'self'") || csp.includes('unsafe-inline')) throw new Error(`weak CSP: ${csp}`);
  await shot(alice.page, 'login');

  log('three people register: by email, by username, by phone (on a phone-sized screen)');
  const bob = await person('bob', { colorScheme: 'dark' });
  const carol = await person('carol', { viewport: { width: 390, height: 760 }, isMobile: true, hasTouch: true });
  await register(alice, 'email', 'alice@example.com', 'Alice', 'alice-pw-1');
  await register(bob, 'username', 'bob_b', 'Bob', 'bob-pw-1');
  await register(carol, 'phone', '+1 555 000 1111', 'Carol', 'carol-pw-1');

  log('alice finds bob by username and asks to be friends');
  await search(alice.page, 'bob_b');
  await alice.page.click('button[aria-label="Add Bob as a friend"]');
  await alice.page.locator('dialog[open] input[aria-label^="A note"]').fill('hi, it is Alice');
  await alice.page.locator('dialog[open] input[aria-label^="A note"]').press('Enter');
  await alice.page.locator('#toast', { hasText: 'Friend request sent' }).waitFor();

  log('bob sees the request live and accepts it');
  await bob.page.locator('#people-badge', { hasText: '1' }).waitFor();
  await bob.page.click('#people');
  await bob.page.locator('dialog[open] q', { hasText: 'hi, it is Alice' }).waitFor();
  await bob.page.click('button[aria-label="Accept Alice"]');
  await bob.page.locator('dialog[open] button[aria-label="Chat with Alice"]').waitFor();
  await shot(bob.page, 'friends');
  await closeDialog(bob.page);

  log('alice and bob chat both ways');
  await alice.page.locator('#search').fill('');
  await search(alice.page, 'bob_b');
  await alice.page.click('button[aria-label="Chat with Bob"]');
  await alice.page.locator('#chat-title', { hasText: 'Bob' }).waitFor();
  await send(alice.page, 'hello bob, see https://example.com/trip');
  await message(alice.page, 'hello bob, see https://example.com/trip').waitFor();
  await chatItem(bob.page, 'Alice').locator('.badge', { hasText: '1' }).waitFor();
  await openChatItem(bob.page, 'Alice');
  await message(bob.page, 'hello bob, see https://example.com/trip').waitFor();
  const href = await bob.page.locator('#messages .text a').first().getAttribute('href');
  if (href !== 'https://example.com/trip') throw new Error(`the link is ${href}`);
  await send(bob.page, 'hi alice!');
  await message(alice.page, 'hi alice!').waitFor();
  log('alice sees that bob read her message');
  await alice.page.locator('#messages .msg.mine .tick.read').first().waitFor();

  log('typing shows on the other side');
  await alice.page.type('#text', 'typ', { delay: 30 });
  await bob.page.locator('#typing', { hasText: 'Alice is typing' }).waitFor();
  await alice.page.fill('#text', '');

  log('alice sends a picture and bob sees it, then enlarges it');
  await alice.page.setInputFiles('#file', { name: 'beach.png', mimeType: 'image/png', buffer: png(320, 200) });
  const pic = bob.page.locator('#messages img.picture');
  await pic.waitFor();
  await until('the picture to load in bob\'s page', () => pic.evaluate((i) => i.complete && i.naturalWidth === 320));
  await until('the picture in alice\'s page', async () => (await alice.page.locator('#messages .msg:not(.pending) img.picture').count()) === 1);
  await shot(alice.page, 'conversation');
  await pic.click();
  await until('the enlarged picture', () => bob.page.locator('dialog[open] img.large').evaluate((i) => i.complete && i.naturalWidth === 320));
  await shot(bob.page, 'picture');
  await closeDialog(bob.page);

  log('a file upload survives a dropped connection and arrives whole, with its name and size');
  const big = Buffer.alloc(2621440 + 123, 7);
  for (let i = 0; i < big.length; i += 997) big[i] = i % 251;
  let patches = 0;
  let heads = 0;
  await alice.page.route('**/files/*', async (route) => {
    const m = route.request().method();
    if (m === 'HEAD') heads += 1;
    if (m === 'PATCH' && ++patches === 2) return route.abort('connectionreset');
    return route.continue();
  });
  await alice.page.setInputFiles('#file', { name: 'notes.bin', mimeType: 'application/octet-stream', buffer: big });
  const file = bob.page.locator('#messages a.file', { hasText: 'notes.bin' });
  await file.locator('small', { hasText: '2.5 MB' }).waitFor();
  await alice.page.unroute('**/files/*');
  if (heads < 1 || patches < 4) throw new Error(`the upload did not resume: ${patches} PATCH, ${heads} HEAD`);
  await until('the download link', async () => (await file.getAttribute('href'))?.startsWith('/files/'));
  const got = await bob.page.evaluate(async (url) => {
    const r = await fetch(url);
    const b = new Uint8Array(await r.arrayBuffer());
    let sum = 0;
    for (let i = 0; i < b.length; i += 997) sum += b[i];
    return { status: r.status, length: b.length, sum };
  }, await file.getAttribute('href'));
  let want = 0;
  for (let i = 0; i < big.length; i += 997) want += big[i];
  if (got.status !== 200 || got.length !== big.length || got.sum !== want) throw new Error(`the download differs: ${JSON.stringify(got)}`);

  log('a sound file goes as a voice note with a player');
  await alice.page.setInputFiles('#file', { name: 'note.wav', mimeType: 'audio/wav', buffer: wav(800) });
  await bob.page.locator('#messages .voice audio').waitFor();
  await until('the voice note to be playable', () => bob.page.locator('#messages .voice audio').evaluate((a) => a.src.includes('/files/')));
  await shot(bob.page, 'files');

  log('bob drops a file on the conversation and alice gets it');
  const dropped = await bob.page.evaluateHandle(() => {
    const d = new DataTransfer();
    d.items.add(new File(['dropped text\n'], 'dropped.txt', { type: 'text/plain' }));
    return d;
  });
  await bob.page.dispatchEvent('#chat', 'dragover', { dataTransfer: dropped });
  await bob.page.locator('#drop').waitFor();
  await bob.page.dispatchEvent('#chat', 'drop', { dataTransfer: dropped });
  await alice.page.locator('#messages a.file', { hasText: 'dropped.txt' }).locator('small', { hasText: '13 B' }).waitFor();

  log('alice makes a group with bob; carol asks to join and alice approves');
  await alice.page.click('#new-group');
  await alice.page.fill('dialog[open] input[name=name]', 'Trio');
  await alice.page.locator('dialog[open] label.check', { hasText: 'Bob' }).locator('input').check();
  await alice.page.click('dialog[open] button[type=submit]');
  await alice.page.locator('#chat-title', { hasText: 'Trio' }).waitFor();
  await send(alice.page, 'welcome to the trio');
  await message(alice.page, 'welcome to the trio').waitFor();
  await openChatItem(bob.page, 'Trio');
  await message(bob.page, 'welcome to the trio').waitFor();
  await search(carol.page, 'Trio');
  await carol.page.click('button[aria-label="Open group Trio"]');
  await carol.page.click('dialog[open] button:has-text("Ask to join")');
  await carol.page.locator('dialog[open] input[aria-label^="A note"]').fill('let me in');
  await carol.page.locator('dialog[open] input[aria-label^="A note"]').press('Enter');
  await carol.page.locator('#toast', { hasText: 'waits for an admin' }).waitFor();
  await carol.page.keyboard.press('Escape');
  await alice.page.locator('#people-badge', { hasText: '1' }).waitFor();
  await alice.page.click('#chat-title');
  await alice.page.locator('dialog[open] q', { hasText: 'let me in' }).waitFor();
  await alice.page.click('dialog[open] button[aria-label="Approve Carol"]');
  await alice.page.locator('dialog[open] .person', { hasText: 'Carol' }).locator('.role', { hasText: 'member' }).waitFor();
  await shot(alice.page, 'group');
  await closeDialog(alice.page);
  await carol.page.locator('#search').fill('');
  await carol.page.press('#search', 'Enter');
  await openChatItem(carol.page, 'Trio');
  await message(carol.page, 'welcome to the trio').waitFor();
  await send(carol.page, 'hi trio, carol here');
  await message(alice.page, 'hi trio, carol here').waitFor();
  await message(bob.page, 'hi trio, carol here').waitFor();
  await shot(carol.page, 'phone');

  log('alice makes bob an admin; the group hears of it');
  await alice.page.click('#chat-title');
  await alice.page.locator('dialog[open] .person', { hasText: 'Bob' }).locator('button', { hasText: 'Make admin' }).click();
  await alice.page.locator('dialog[open] .person', { hasText: 'Bob' }).locator('.role', { hasText: 'admin' }).waitFor();
  await closeDialog(alice.page);
  await bob.page.locator('#messages .system', { hasText: 'Alice made Bob an admin' }).waitFor();

  log('bob changes his profile: nickname, signature and avatar (previewed first)');
  await bob.page.click('#me');
  await bob.page.fill('dialog[open] input[name=nickname]', 'Bobby B');
  await bob.page.fill('dialog[open] input[name=signature]', 'on the road');
  await bob.page.setInputFiles('dialog[open] input[type=file]', { name: 'me.png', mimeType: 'image/png', buffer: png(64, 64) });
  await bob.page.locator('dialog[open] img[alt="new avatar"]').waitFor();
  await bob.page.click('dialog[open] button[type=submit]');
  await bob.page.locator('#me', { hasText: 'Bobby B' }).locator('img.avatar').waitFor();
  await until('bob\'s avatar to load', () => bob.page.locator('#me img.avatar').evaluate((i) => i.complete && i.naturalWidth === 64));
  await closeDialog(bob.page);

  log('alice gives bob a remark, shown in her chat list');
  await alice.page.click('#people');
  await alice.page.click('dialog[open] button[aria-label^="Set a remark for"]');
  await alice.page.locator('dialog[open] input[aria-label="A private name for this friend"]').fill('Bob from work');
  await alice.page.locator('dialog[open] input[aria-label="A private name for this friend"]').press('Enter');
  await alice.page.locator('dialog[open] .person-name', { hasText: 'Bob from work' }).waitFor();
  await closeDialog(alice.page);
  await chatItem(alice.page, 'Bob from work').waitFor();

  log('a reload keeps bob logged in');
  await bob.page.reload();
  await bob.page.locator('#status[data-state=online]').waitFor({ state: 'attached' });
  if (await bob.page.locator('#auth').isVisible()) throw new Error('the reload lost the session');
  await openChatItem(bob.page, 'Alice');
  await message(bob.page, 'hi alice!').waitFor();

  log('bob loses the network; messages both ways arrive once after it returns');
  await openChatItem(alice.page, 'Bob from work');
  await bob.context.setOffline(true);
  await bob.page.locator('#status[data-state=offline]').waitFor({ state: 'attached' });
  for (const m of ['while away 1', 'while away 2', 'while away 3']) {
    await send(alice.page, m);
    await message(alice.page, m).waitFor();
  }
  await send(bob.page, 'written offline');
  await bob.page.locator('#messages .msg.pending', { hasText: 'written offline' }).waitFor();
  await bob.context.setOffline(false);
  await bob.page.locator('#status[data-state=online]').waitFor({ state: 'attached' });
  for (const m of ['while away 1', 'while away 2', 'while away 3']) await message(bob.page, m).waitFor();
  await message(alice.page, 'written offline').waitFor();
  await bob.page.locator('#messages .msg.pending').waitFor({ state: 'detached' });
  // Let any late duplicate arrive before counting.
  await new Promise((r) => setTimeout(r, 1500));
  for (const [p, m] of [[bob, 'while away 1'], [bob, 'while away 2'], [bob, 'while away 3'], [alice, 'written offline'], [bob, 'written offline']]) {
    const n = await count(p.page, m);
    if (n !== 1) throw new Error(`${p.name} shows "${m}" ${n} times`);
  }
  const indexes = await bob.page.locator('#messages .msg[data-index]').evaluateAll((ns) => ns.map((n) => Number(n.dataset.index)));
  for (let i = 1; i < indexes.length; i++) if (indexes[i] !== indexes[i - 1] + 1) throw new Error(`bob's messages skip: ${indexes}`);

  log('the keyboard moves between chats and closes the conversation');
  await bob.page.locator('#text').focus();
  await bob.page.keyboard.press('Alt+ArrowDown');
  await bob.page.locator('#chat-title', { hasText: 'Trio' }).waitFor();
  await bob.page.keyboard.press('Alt+ArrowUp');
  await bob.page.locator('#chat-title', { hasText: 'Alice' }).waitFor();
  await bob.page.keyboard.press('Control+k');
  if (!(await bob.page.evaluate(() => document.activeElement?.id === 'search'))) throw new Error('Ctrl+K does not reach the search');
  await bob.page.locator('#text').focus();
  await bob.page.keyboard.press('Escape');
  await bob.page.locator('#chat').waitFor({ state: 'hidden' });
  await bob.page.locator('#empty').waitFor();

  log('a plain OurChat v1 client writes to alice, who sees it in her browser');
  const dave = v1Client();
  const reg = await dave.request({ code: 4, email: 'dave@example.com', password: 'dave-pw', name: 'Dave' }, 5);
  if (reg.state !== 0) throw new Error(`dave's registration: ${JSON.stringify(reg)}`);
  const login = await dave.request({ code: 6, login_type: 0, account: 'dave@example.com', password: 'dave-pw', ext: 1 }, 7);
  if (login.state !== 0) throw new Error(`dave's login: ${JSON.stringify(login)}`);
  const found = await dave.request({ code: 128, by: 'email', query: 'alice@example.com' }, 129);
  const aliceOcid = found.accounts[0].ocid;
  for (let i = 1; i < HISTORY; i++) {
    await dave.request({ code: 0, sender: { private_id: aliceOcid }, msg: `older ${i}`, client_id: `d-${i}` }, 103);
  }
  await dave.request({ code: 0, sender: { private_id: aliceOcid }, msg: 'hello from a plain OurChat client', client_id: 'd-last' }, 103);
  await chatItem(alice.page, 'Dave').locator('.preview', { hasText: 'hello from a plain OurChat client' }).waitFor();
  await openChatItem(alice.page, 'Dave');
  await message(alice.page, 'hello from a plain OurChat client').waitFor();
  dave.close();

  log('alice logs out');
  await alice.page.click('#settings');
  await alice.page.click('#logout');
  await alice.page.locator('#auth').waitFor();
  if (await alice.page.evaluate(() => localStorage.getItem('natter.token'))) throw new Error('the token stayed after logout');

  log('alice logs in by OC number; older messages load by index as she scrolls up');
  const form = alice.page.locator('#login-form');
  await form.locator('select[name=kind]').selectOption('1');
  await form.locator('input[name=account]').fill(String(aliceOcid));
  await form.locator('input[name=password]').fill('alice-pw-1');
  await form.locator('button[type=submit]').click();
  await alice.page.locator('#status[data-state=online]').waitFor({ state: 'attached' });
  await openChatItem(alice.page, 'Dave');
  await message(alice.page, 'hello from a plain OurChat client').waitFor();
  const shown = () => alice.page.locator('#messages .msg[data-index]').count();
  await until('the newest page', async () => (await shown()) === 50);
  for (let round = 0; (await shown()) < HISTORY; round++) {
    if (round > 20) throw new Error(`scrolling up shows only ${await shown()} of ${HISTORY} messages`);
    const before = await shown();
    await alice.page.locator('#messages').evaluate((m) => { m.scrollTop = 0; m.dispatchEvent(new Event('scroll')); });
    await until('an older page', async () => (await shown()) > before);
  }
  const all = await alice.page.locator('#messages .msg[data-index]').evaluateAll((ns) => ns.map((n) => Number(n.dataset.index)));
  if (all.length !== HISTORY || all.some((v, i) => v !== i + 1)) throw new Error(`history out of order: ${all}`);
  await message(alice.page, 'older 1').waitFor();
  await alice.page.locator('#messages .more').waitFor({ state: 'detached' });

  log('carol sets a security question, changes her password and sees her login');
  await carol.page.click('#back');
  await carol.page.click('#settings');
  const settings = carol.page.locator('dialog[open]');
  await settings.locator('input[name=question]').fill('First pet?');
  await settings.locator('input[name=answer]').fill('Rex');
  await settings.locator('input[name=question]').locator('xpath=ancestor::form').locator('input[name=password]').fill('carol-pw-1');
  await settings.locator('button', { hasText: 'Save question' }).click();
  await carol.page.locator('#toast', { hasText: 'Security question saved' }).waitFor();
  await settings.locator('input[name=old_password]').fill('carol-pw-1');
  await settings.locator('input[name=new_password]').fill('carol-pw-2');
  await settings.locator('input[name=again]').fill('carol-pw-2');
  await settings.locator('button', { hasText: 'Change password' }).click();
  await carol.page.locator('#toast', { hasText: 'Password changed' }).waitFor();
  await settings.locator('.person', { hasText: 'this one' }).waitFor();
  await closeDialog(carol.page);

  log('someone who knows the answer resets carol\'s password: her open login ends');
  const stranger = await person('stranger');
  await stranger.page.locator('#auth').waitFor();
  await stranger.page.click('#forgot');
  const reset = stranger.page.locator('dialog[open]');
  await reset.locator('select').selectOption('3');
  await reset.locator('input[name=account]').fill('+1 555 000 1111');
  await reset.locator('button[type=submit]').click();
  await reset.locator('p', { hasText: 'First pet?' }).waitFor();
  await reset.locator('input[name=answer]').fill('  rex ');
  await reset.locator('input[name=pw]').fill('carol-pw-3');
  await reset.locator('button[type=submit]').click();
  await stranger.page.locator('#toast', { hasText: 'log in with the new one' }).waitFor();
  await carol.page.locator('#auth').waitFor();
  const f = stranger.page.locator('#login-form');
  await f.locator('select[name=kind]').selectOption('3');
  await f.locator('input[name=account]').fill('+15550001111');
  await f.locator('input[name=password]').fill('carol-pw-3');
  await f.locator('button[type=submit]').click();
  await stranger.page.locator('#me', { hasText: 'Carol' }).waitFor();

  log('alice removes carol from the group, invites her back, and bob leaves');
  const carolOcid = aliceOcid + 2; // registered third; ocids are given in sequence
  await openChatItem(alice.page, 'Trio');
  await alice.page.click('#chat-title');
  await alice.page.click('dialog[open] button[aria-label="Remove Carol from the group"]');
  await alice.page.locator('dialog[open][aria-label="Remove member"] button.danger').click();
  await alice.page.locator('dialog[open] .person', { hasText: 'Carol' }).waitFor({ state: 'detached' });
  await stranger.page.locator('#toast', { hasText: 'You were removed from a group' }).waitFor();
  await chatItem(stranger.page, 'Trio').waitFor({ state: 'detached' });
  await alice.page.locator('dialog[open] input[name=ocid]').fill(String(carolOcid));
  await alice.page.locator('dialog[open] button', { hasText: 'Invite' }).click();
  await alice.page.locator('#toast', { hasText: 'Invited' }).waitFor();
  await closeDialog(alice.page);
  await stranger.page.locator('#people-badge', { hasText: '1' }).waitFor();
  await stranger.page.click('#people');
  await stranger.page.locator('dialog[open] .person', { hasText: 'invites you' }).locator('button', { hasText: 'Join' }).click();
  await chatItem(stranger.page, 'Trio').waitFor();
  await closeDialog(stranger.page);
  await bob.page.reload();
  await openChatItem(bob.page, 'Trio');
  await bob.page.click('#chat-title');
  await bob.page.click('dialog[open] button:has-text("Leave")');
  await bob.page.locator('dialog[open][aria-label="Leave group"] button.danger').click();
  await chatItem(bob.page, 'Trio').waitFor({ state: 'detached' });
  await alice.page.locator('#messages .system', { hasText: 'Bobby B left' }).waitFor();
  await alice.page.locator('#messages .system', { hasText: 'Carol joined' }).nth(1).waitFor();

  log('alice rejects a friend request from a v1 client, who hears of it');
  const eve = v1Client();
  await eve.request({ code: 4, username: 'eve', password: 'eve-pw', name: 'Eve' }, 5);
  await eve.request({ code: 6, login_type: 2, account: 'eve', password: 'eve-pw', ext: 1 }, 7);
  await eve.push(106);
  await eve.request({ code: 111, ocid: aliceOcid, msg: 'friends?' }, 112);
  await alice.page.locator('#people-badge', { hasText: '1' }).waitFor();
  await alice.page.click('#people');
  await alice.page.click('dialog[open] button[aria-label="Reject Eve"]');
  const answer = await eve.push(120);
  if (answer.state !== 'rejected' || answer.ocid !== aliceOcid) throw new Error(`eve hears ${JSON.stringify(answer)}`);
  eve.close();

  log('alice blocks bob: his message is refused and he is told; unblocked, it goes');
  await alice.page.click('dialog[open] button[aria-label="Block Bob from work"]');
  await alice.page.locator('dialog[open][aria-label="Block"] button.danger').click();
  await alice.page.locator('dialog[open] section', { hasText: 'Blocked' }).locator('.person', { hasText: 'Bobby B' }).waitFor();
  await openChatItem(bob.page, 'Alice');
  await send(bob.page, 'are you there?');
  await bob.page.locator('#messages .msg.failed', { hasText: 'are you there?' }).locator('[aria-label*="does not accept messages from you"]').waitFor();
  await alice.page.locator('dialog[open] section', { hasText: 'Blocked' }).locator('button', { hasText: 'Unblock' }).click();
  await alice.page.locator('dialog[open] section', { hasText: 'Blocked' }).waitFor({ state: 'detached' });
  await closeDialog(alice.page);
  await send(bob.page, 'and now?');
  // The block ended the friendship, and the remark with it.
  await openChatItem(alice.page, 'Bobby B');
  await message(alice.page, 'and now?').waitFor();
  if (await count(alice.page, 'are you there?') !== 0) throw new Error('a refused message arrived');

  log('alice renames the group and gives it an avatar; carol sees the new name');
  await openChatItem(alice.page, 'Trio');
  await alice.page.click('#chat-title');
  await alice.page.click('dialog[open] button:has-text("Rename")');
  await alice.page.locator('dialog[open][aria-label="Rename group"] input').fill('Trio club');
  await alice.page.locator('dialog[open][aria-label="Rename group"] input').press('Enter');
  await alice.page.locator('dialog[open] .group-name', { hasText: 'Trio club' }).waitFor();
  await alice.page.setInputFiles('dialog[open] input[type=file]', { name: 'group.png', mimeType: 'image/png', buffer: png(48, 48) });
  await until('the group avatar', () => alice.page.locator('dialog[open] .group-head img.avatar').evaluate((i) => i.complete && i.naturalWidth === 48).catch(() => false));
  await closeDialog(alice.page);
  await chatItem(stranger.page, 'Trio club').waitFor();
  await alice.page.locator('#messages .system', { hasText: 'renamed the group to "Trio club"' }).waitFor();

  log('a picture pasted into the message box is sent');
  await alice.page.locator('#text').evaluate((t, bytes) => {
    const d = new DataTransfer();
    d.items.add(new File([new Uint8Array(bytes)], 'pasted.png', { type: 'image/png' }));
    t.dispatchEvent(new ClipboardEvent('paste', { clipboardData: d, bubbles: true, cancelable: true }));
  }, [...png(40, 30)]);
  await openChatItem(stranger.page, 'Trio club');
  await until('the pasted picture in carol\'s page', () => stranger.page.locator('#messages img.picture')
    .evaluateAll((is) => is.some((i) => i.complete && i.naturalWidth === 40)));

  log('while carol\'s tab is hidden, a message raises a desktop notification and counts as unread');
  await stranger.page.evaluate(() => {
    Object.defineProperty(document, 'hidden', { get: () => true, configurable: true });
    Object.defineProperty(document, 'visibilityState', { get: () => 'hidden', configurable: true });
    window.shown = [];
    window.Notification = class {
      static permission = 'granted';
      constructor(title, options) { window.shown.push({ title, body: options.body }); }
    };
  });
  await send(alice.page, 'anyone around?');
  await until('the notification', () => stranger.page.evaluate(() => window.shown.some((n) => n.title === 'Trio club' && n.body === 'anyone around?')));
  await chatItem(stranger.page, 'Trio club').locator('.badge', { hasText: '1' }).waitFor();

  if (problems.length) throw new Error(problems.join('\n'));
  console.log('e2e: all passed');
  await browser.close();
} catch (e) {
  console.error(`e2e: FAILED at "${step}": ${e.stack || e}`);
  if (problems.length) console.error(problems.join('\n'));
  if (shots) {
    for (const ctx of browser.contexts()) {
      for (const [i, pg] of ctx.pages().entries()) await pg.screenshot({ path: join(shots, `failure-${browser.contexts().indexOf(ctx)}-${i}.png`) }).catch(() => {});
    }
  }
  await browser.close();
  process.exit(1);
}
