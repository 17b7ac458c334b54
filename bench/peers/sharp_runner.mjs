// sharp, written the way its docs recommend for many outputs of one input: decode once (with
// shrink-on-load to the largest output) to raw pixels, then fan out one pipeline per output.
// Usage: node sharp_runner.mjs JOB.json -> prints {"seconds": [...], "peak_rss": bytes}
import { readFileSync, writeFileSync } from "node:fs";
import sharp from "sharp";

const job = JSON.parse(readFileSync(process.argv[2], "utf8"));
if (process.env.PEER_THREADS === "1") sharp.concurrency(1);
sharp.cache(false); // every iteration decodes again, as a worker's next job would
const input = readFileSync(job.source);
const largest = Math.max(...job.outputs.map((o) => o.width));

function encode(pipeline, o) {
  if (o.format === "webp") return pipeline.webp({ quality: o.quality, effort: o.effort ?? 4 });
  if (o.format === "jpeg") return pipeline.jpeg({ quality: o.quality, progressive: !!o.progressive });
  if (o.format === "png") return pipeline.png({ compressionLevel: o.effort ?? 6 });
  throw new Error(`format ${o.format}`);
}

// An animation: sharp keeps the frames only through its own pipeline (animated: true), so each
// output decodes the source again, as sharp's docs show for animated images.
function animated() {
  return Promise.all(
    job.outputs.map((o) =>
      o.format === "webp"
        ? encode(sharp(input, { animated: true }).resize({ width: o.width }), o).toBuffer()
        : encode(sharp(input).resize({ width: o.width }), o).toBuffer(),
    ),
  );
}

async function once() {
  if (job.animated) return animated();
  const { data, info } = await sharp(input)
    .resize({ width: largest, withoutEnlargement: true })
    .raw()
    .toBuffer({ resolveWithObject: true });
  const raw = { raw: { width: info.width, height: info.height, channels: info.channels } };
  // the source's size, not the decode's, fixes each output's height (as PixelFlow and Pillow do)
  return Promise.all(
    job.outputs.map((o) => {
      const height = o.height ?? Math.round((job.source_height * o.width) / job.source_width);
      const fit = o.fit === "cover" ? "cover" : "fill";
      return encode(sharp(data, raw).resize({ width: o.width, height, fit }), o).toBuffer();
    }),
  );
}

const seconds = [];
let outputs = [];
for (let i = 0; i < job.iterations; i++) {
  const t = process.hrtime.bigint();
  outputs = await once();
  seconds.push(Number(process.hrtime.bigint() - t) / 1e9);
}
if (job.out_dir) job.outputs.forEach((o, i) => writeFileSync(`${job.out_dir}/${o.id}.${o.format}`, outputs[i]));
// VmHWM: this process's own high-water mark (maxRSS would carry the parent's across exec)
const hwm = readFileSync("/proc/self/status", "utf8").match(/VmHWM:\s+(\d+)/)[1];
console.log(JSON.stringify({ seconds, peak_rss: Number(hwm) * 1024 }));
