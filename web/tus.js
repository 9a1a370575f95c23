// Resumable uploads with the tus 1.0 protocol at /files/ (see docs/protocol/files.md): create
// the upload, send the bytes in chunks with PATCH, and after a failure ask with HEAD where the
// upload stands and go on from there. Small enough to keep here rather than ship a library.

const CHUNK = 1024 * 1024;

function b64(text) {
  return btoa(String.fromCharCode(...new TextEncoder().encode(text)));
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// Wait until the browser says it is online (at once if it is).
function online() {
  if (navigator.onLine) return Promise.resolve();
  return new Promise((r) => window.addEventListener('online', r, { once: true }));
}

class HttpError extends Error {
  constructor(status, body) {
    let message = `upload failed (${status})`;
    try { message = JSON.parse(body).message || message; } catch { /* not JSON */ }
    super(message);
    this.status = status;
  }
}

function xhr(method, url, token, headers, body, onProgress) {
  return new Promise((resolve, reject) => {
    const r = new XMLHttpRequest();
    r.open(method, url);
    r.setRequestHeader('Tus-Resumable', '1.0.0');
    r.setRequestHeader('Authorization', `Bearer ${token}`);
    for (const [k, v] of Object.entries(headers)) r.setRequestHeader(k, v);
    if (onProgress) r.upload.onprogress = (e) => onProgress(e.loaded);
    r.onload = () => resolve(r);
    r.onerror = () => reject(new Error('network'));
    r.ontimeout = () => reject(new Error('network'));
    r.send(body ?? null);
  });
}

// Upload `file` (a File or Blob with a name); `onProgress(sent, total)` follows it. Resolves to
// the file's id. Network failures are retried from where the server says the upload stands;
// refusals (quota, size, login) reject with the server's message.
export async function upload(file, token, onProgress) {
  const total = file.size;
  const meta = `filename ${b64(file.name || 'file')},filetype ${b64(file.type || 'application/octet-stream')}`;
  let url;
  for (let attempt = 0; !url; attempt++) {
    await online();
    try {
      const r = await xhr('POST', '/files/', token, { 'Upload-Length': String(total), 'Upload-Metadata': meta });
      if (r.status !== 201) throw new HttpError(r.status, r.responseText);
      url = r.getResponseHeader('Location');
    } catch (e) {
      if (e instanceof HttpError || attempt > 20) throw e;
      await sleep(Math.min(1000 * 2 ** attempt, 10000));
    }
  }
  let offset = 0;
  let failures = 0;
  onProgress?.(0, total);
  while (offset < total) {
    await online();
    try {
      const end = Math.min(offset + CHUNK, total);
      const r = await xhr('PATCH', url, token, {
        'Upload-Offset': String(offset),
        'Content-Type': 'application/offset+octet-stream',
      }, file.slice(offset, end), (n) => onProgress?.(offset + n, total));
      if (r.status === 204) {
        offset = Number(r.getResponseHeader('Upload-Offset'));
        failures = 0;
        onProgress?.(offset, total);
        continue;
      }
      if (r.status !== 409 && r.status !== 423) throw new HttpError(r.status, r.responseText);
      offset = await where(url, token);
    } catch (e) {
      if (e instanceof HttpError || ++failures > 30) throw e;
      await sleep(Math.min(500 * 2 ** failures, 5000));
      try { offset = await where(url, token); } catch { /* still away: try again */ }
    }
  }
  return url.split('/').pop();
}

// Where the upload at `url` stands (HEAD).
async function where(url, token) {
  const r = await xhr('HEAD', url, token, {});
  if (r.status !== 200) throw new HttpError(r.status, '');
  return Number(r.getResponseHeader('Upload-Offset'));
}
