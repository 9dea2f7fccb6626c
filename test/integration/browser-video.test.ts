/**
 * A real browser plays a video through the gateway: headless Chromium (Debian's `chromium`,
 * driven by playwright-core) loads a page from a local server whose <video> points at a signed
 * link on the gateway (cross-origin media, no CORS needed), plays it, seeks to the middle and
 * waits for frames past the seek point. The seek must be a 206 served from the cache, and the
 * store must have seen exactly one full GET. The video is made by ffmpeg and kept on s3rver.
 *
 * Skipped (with a printed reason) only when /usr/bin/chromium or ffmpeg is missing; CI installs
 * both (`apt-get install -y chromium ffmpeg`).
 */
import { execFile, spawnSync } from 'node:child_process';
import { createPrivateKey, sign as edSign } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { chromium, type Browser, type Response as PwResponse } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { createGateway, type Gateway } from '../../src/gateway.js';
import { fromStores } from '../../src/stores/registry.js';
import { createS3Store } from '../../src/stores/s3.js';
import type { ObjectStore } from '../../src/stores/types.js';
import { countingStore, type CountingStore } from '../helpers/counting-store.js';
import { AUTH, TEST_TOKEN } from '../helpers/gateway.js';
import { captureLog } from '../helpers/log-capture.js';
import { s3StoreConfig, startS3rver, type S3rverInstance } from '../helpers/s3rver.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const KEY = 'videos/testsrc.webm';
/** The browser's download rate (CDP network emulation). */
const THROTTLE_BYTES_PER_SEC = 1_000_000;
/** 16 s of 320x240 at 25 fps; noise keeps libvpx at the target bitrate, so the file is a few MB. */
const FFMPEG_ARGS = [
  '-hide_banner', '-loglevel', 'error', '-y',
  '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=25',
  '-t', '16', '-vf', 'noise=alls=30:allf=t',
  '-c:v', 'libvpx', '-b:v', '2500k', '-minrate', '2500k', '-maxrate', '2500k', '-g', '25',
  '-deadline', 'realtime', '-cpu-used', '16', '-threads', '2',
];

const hasFfmpeg = spawnSync('ffmpeg', ['-version'], { stdio: 'ignore' }).status === 0;
const hasChromium = existsSync(CHROMIUM);
const missing = [...(hasChromium ? [] : [CHROMIUM]), ...(hasFfmpeg ? [] : ['ffmpeg'])];
if (missing.length > 0) {
  console.warn(`browser-video: skipped, ${missing.join(' and ')} not installed (apt-get install -y chromium ffmpeg)`);
}

const SEED = Buffer.alloc(32, 23);
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const PRIVATE_KEY = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, SEED]), format: 'der', type: 'pkcs8' });
const PUBLIC_KEY = (PRIVATE_KEY.export({ format: 'jwk' }) as { x: string }).x;

/** An independent link signer (node:crypto), cachegate's format. */
function sign(claims: Record<string, unknown>): string {
  const payload = Buffer.from(JSON.stringify({ v: 1, exp: Math.floor(Date.now() / 1000) + 600, m: 'GET', ...claims }));
  return `${payload.toString('base64url')}.${edSign(null, payload, PRIVATE_KEY).toString('base64url')}`;
}

interface Seen {
  status: number;
  range: string | undefined;
  contentRange: string | undefined;
  cgStatus: string | undefined;
  acceptRanges: string | undefined;
  /** Recorded after the seek was asked for. */
  afterSeek: boolean;
}

interface AccessLine {
  msg: string;
  method: string;
  key?: string;
  status: number;
}

describe.skipIf(missing.length > 0)('a browser playing and seeking a video through the gateway', () => {
  let dir: string;
  let srv: S3rverInstance;
  let uploader: ObjectStore;
  let store: CountingStore;
  let gateway: Gateway;
  let gatewayUrl: string;
  let pageServer: http.Server;
  let browser: Browser;
  let video: Buffer;
  const logs = captureLog();

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-video-'));
    const file = path.join(dir, 'testsrc.webm');
    const [s3rver] = await Promise.all([startS3rver({ buckets: ['video-bucket'] }), promisify(execFile)('ffmpeg', [...FFMPEG_ARGS, file])]);
    srv = s3rver;
    video = await readFile(file);
    const s3 = (id: string) =>
      createS3Store(id, s3StoreConfig(srv, 'video-bucket', 32));
    uploader = s3('uploader');
    await uploader.put(KEY, Readable.from([video]), { contentLength: video.length, contentType: 'video/webm' });

    store = countingStore(s3('media'));
    const raw = {
      listen: '127.0.0.1:0',
      auth: { bearer_token: TEST_TOKEN, public_key: PUBLIC_KEY },
      cache: { max_memory: '64MiB', max_object_size: '32MiB' },
      stores: { media: { type: 'fs', root: '/nonexistent' } },
    };
    gateway = createGateway(validateConfig(raw), { log: logs.log, stores: fromStores(new Map([[store.id, store]])) });
    ({ url: gatewayUrl } = await gateway.listen('127.0.0.1', 0));

    const src = `${gatewayUrl}/media/${KEY}?sig=${sign({ b: 'media', p: KEY })}`;
    const html = `<!doctype html><meta charset="utf-8"><title>video</title><video id="v" muted playsinline preload="auto" src="${src}"></video>`;
    pageServer = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(html);
    });
    await new Promise<void>((resolve) => pageServer.listen(0, '127.0.0.1', resolve));
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  });

  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => (pageServer ? pageServer.close(resolve) : resolve(undefined)));
    await gateway?.close();
    await uploader?.close();
    await srv?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('plays, seeks to the middle with a 206 served from the cache, and the store saw one full GET', async () => {
    expect(video.length).toBeGreaterThan(3 * 2 ** 20);
    const page = await browser.newPage();
    const seen: Seen[] = [];
    let afterSeek = false;
    const pending: Promise<void>[] = [];
    page.on('response', (res: PwResponse) => {
      if (!res.url().startsWith(`${gatewayUrl}/media/`)) return;
      // Recorded in arrival order; the headers are filled in as they are read.
      const entry: Seen = { status: res.status(), range: undefined, contentRange: undefined, cgStatus: undefined, acceptRanges: undefined, afterSeek };
      seen.push(entry);
      pending.push(
        (async () => {
          const headers = await res.allHeaders();
          entry.range = (await res.request().headerValue('range')) ?? undefined;
          entry.contentRange = headers['content-range'];
          entry.cgStatus = headers['x-cg-status'];
          entry.acceptRanges = headers['accept-ranges'];
        })(),
      );
    });
    // Chromium reads ~10 s ahead as fast as the network allows; at 1 MB/s the middle of the
    // video is still unread when the seek comes, so the seek is a new range request.
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: THROTTLE_BYTES_PER_SEC, uploadThroughput: -1 });
    const { port } = pageServer.address() as AddressInfo;
    await page.goto(`http://127.0.0.1:${port}/`);

    const started = await page.evaluate(async () => {
      const v = document.getElementById('v') as HTMLVideoElement;
      const playing = new Promise((resolve) => v.addEventListener('playing', resolve, { once: true }));
      await v.play();
      await playing;
      return { duration: v.duration, width: v.videoWidth, height: v.videoHeight };
    });
    expect(started.duration).toBeCloseTo(16, 0);
    expect([started.width, started.height]).toEqual([320, 240]);

    // The first request's fill runs to the end on its own; once it is in the cache, seek.
    const cached = async () => (await fetch(`${gatewayUrl}/media/${KEY}`, { method: 'HEAD', headers: AUTH })).headers.get('x-cg-status') === 'hit=1';
    const until = Date.now() + 10_000;
    while (!(await cached()) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    expect(await cached()).toBe(true);

    afterSeek = true;
    const after = await page.evaluate(async () => {
      const v = document.getElementById('v') as HTMLVideoElement;
      const target = v.duration / 2;
      const bufferedBefore = Array.from({ length: v.buffered.length }, (_, i) => [v.buffered.start(i), v.buffered.end(i)]);
      const seeked = new Promise((resolve) => v.addEventListener('seeked', resolve, { once: true }));
      v.currentTime = target;
      await seeked;
      // A frame past the seek point: playback goes on from there.
      await new Promise<void>((resolve) => {
        const onTime = () => {
          if (v.currentTime > target + 0.2) {
            v.removeEventListener('timeupdate', onTime);
            resolve();
          }
        };
        v.addEventListener('timeupdate', onTime);
      });
      const buffered = Array.from({ length: v.buffered.length }, (_, i) => [v.buffered.start(i), v.buffered.end(i)]);
      return { target, currentTime: v.currentTime, readyState: v.readyState, error: v.error?.code ?? null, bufferedBefore, buffered };
    });
    await page.close();
    await Promise.all(pending);

    expect(after.error).toBeNull();
    expect(after.currentTime).toBeGreaterThan(after.target);
    expect(after.readyState).toBeGreaterThanOrEqual(2); // HAVE_CURRENT_DATA: a frame is there

    const size = video.length;
    const rangeOf = (s: Seen) => {
      const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(s.contentRange ?? '');
      return m ? { start: Number(m[1]), end: Number(m[2]), size: Number(m[3]) } : undefined;
    };
    expect(seen.length).toBeGreaterThanOrEqual(2);
    for (const s of seen) {
      // A media element always asks with Range; every answer is a 206 with the object's size.
      expect(s.range, JSON.stringify(s)).toMatch(/^bytes=\d+-\d*$/);
      expect(s.status, JSON.stringify(s)).toBe(206);
      expect(s.acceptRanges).toBe('bytes');
      expect(rangeOf(s)?.size, JSON.stringify(s)).toBe(size);
    }
    expect(rangeOf(seen[0]!)?.start).toBe(0);
    expect(seen[0]!.cgStatus).toBe('hit=0');

    // The seek: a request made after it, starting near the middle of this constant-bitrate file,
    // served from the cache.
    const seeks = seen.filter((s) => s.afterSeek && rangeOf(s)!.start > size * 0.35 && rangeOf(s)!.start < size * 0.65);
    expect(seeks.length, JSON.stringify({ seen, after })).toBeGreaterThanOrEqual(1);
    for (const s of seeks) {
      expect(s.status).toBe(206);
      expect(s.cgStatus).toBe('hit=1');
    }
    // One slice GET filled the cache (never a whole-object GET).
    expect(store.calls.get).toBe(0);
    expect(store.calls.getRanged).toBe(1);

    // The gateway's own access log agrees: only 206s for the video. (Its `cache` field is not
    // checked here: media.test.ts covers the accounting of hits and misses.)
    // (A line is written when its response closes, so give the last ones a moment.)
    const gets = () =>
      logs
        .lines<AccessLine>()
        .filter((l) => l.msg === 'request' && l.method === 'GET' && l.key === KEY);
    for (let i = 0; i < 100 && gets().length < seen.length; i++) await new Promise((r) => setTimeout(r, 20));
    const lines = gets();
    // (Chromium may also cancel a request before its response: logged, but not a Playwright response.)
    expect(lines.length).toBeGreaterThanOrEqual(seen.length);
    expect(lines.every((l) => l.status === 206)).toBe(true);
  });
});
