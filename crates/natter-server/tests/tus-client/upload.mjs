// Uploads a file to natter with tus-js-client as any application would: in chunks, with the
// first chunk in the creation request, a pause after the first chunk and a resume (the client
// asks the server for the offset with HEAD).
//
// node upload.mjs <endpoint> <login token> <file>; prints the upload's URL.
import { readFileSync } from 'node:fs';
import * as tus from 'tus-js-client';

const [endpoint, token, path] = process.argv.slice(2);
const data = readFileSync(path);

let paused = false;
const upload = new tus.Upload(data, {
  endpoint,
  chunkSize: 64 * 1024,
  uploadDataDuringCreation: true,
  retryDelays: [0, 200, 500],
  headers: { Authorization: `Bearer ${token}` },
  metadata: { filename: 'from-tus-js.bin', filetype: 'application/octet-stream' },
  onChunkComplete(_size, sent) {
    if (!paused && sent > 0 && sent < data.length) {
      paused = true;
      upload.abort().then(() => setTimeout(() => upload.start(), 50));
    }
  },
  onError(e) {
    console.error(`upload failed: ${e}`);
    process.exit(1);
  },
  onSuccess() {
    if (!paused) {
      console.error('the upload never paused');
      process.exit(1);
    }
    console.log(upload.url);
  },
});
upload.start();
