// Bundle src/pns.js into one IIFE file (global `PNS`, so `PNS.PNSClient`) with
// its source map, for every node to serve at /pns-client.js.
//
//   node build.mjs              write pns_sio/static/pns-client.js(.map)
//   node build.mjs --out DIR    write the same two files into DIR instead
//   node build.mjs --check      build into a temporary directory; fail if the
//                               committed files differ (the bundle is stale)
//
// The bundle is built as if it lived in pns_sio/static whatever --out says, so
// a build into a temporary directory is byte-for-byte comparable.
//
// Every build fails past the size budget (gzipped), and --check also when
// README.md's stated gzipped size is more than 0.5 KiB off.
import { build } from "esbuild";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import { gzipSync } from "node:zlib";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const staticDir = path.resolve(here, "../../pns_sio/static");
const NAMES = ["pns-client.js", "pns-client.js.map"];
const BUDGET_KIB = 19; // gzipped; socket.io-client alone is 12.9 KiB of it (4.8.3)

async function bundle() {
  const result = await build({
    entryPoints: [path.join(here, "src/pns.js")],
    outfile: path.join(staticDir, NAMES[0]),
    absWorkingDir: here,
    bundle: true,
    format: "iife",
    globalName: "PNS",
    platform: "browser",
    target: ["es2019"],
    minify: true,
    sourcemap: "linked",
    legalComments: "eof",
    charset: "utf8",
    write: false,
    logLevel: "warning",
  });
  const files = new Map();
  for (const file of result.outputFiles) files.set(path.basename(file.path), file.contents);
  return files;
}

async function writeTo(dir, files) {
  await mkdir(dir, { recursive: true });
  for (const name of NAMES) await writeFile(path.join(dir, name), files.get(name));
}

async function check(files) {
  const tmp = await mkdtemp(path.join(os.tmpdir(), "pns-bundle-"));
  const stale = [];
  try {
    await writeTo(tmp, files);
    for (const name of NAMES) {
      const fresh = await readFile(path.join(tmp, name));
      const committed = await readFile(path.join(staticDir, name)).catch(() => null);
      if (committed === null || !committed.equals(fresh)) stale.push(name);
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  if (stale.length) {
    console.error(
      `STALE BUNDLE: pns_sio/static/${stale.join(" and ")} ${stale.length > 1 ? "differ" : "differs"} from a ` +
        "fresh build of clients/js/src. Run `make js-bundle` (or `cd clients/js && npm run build`) and commit the result.",
    );
    process.exit(1);
  }
  console.log("pns_sio/static/pns-client.js is up to date with clients/js/src");
}

/** The bundle's gzipped size in KiB; exits past the budget (and, with `strict`, on a stale README). */
async function checkSize(files, strict) {
  const kib = gzipSync(files.get(NAMES[0]), { level: 9 }).length / 1024;
  if (kib > BUDGET_KIB) {
    console.error(`BUNDLE TOO LARGE: ${kib.toFixed(1)} KiB gzipped, the budget is ${BUDGET_KIB} KiB (build.mjs).`);
    process.exit(1);
  }
  const readme = await readFile(path.join(here, "README.md"), "utf8");
  const stated = Number((readme.match(/([0-9]+(?:\.[0-9]+)?) KiB gzipped/) || [])[1]);
  if (!(Math.abs(stated - kib) <= 0.5)) {
    const say = `clients/js/README.md says ${stated} KiB gzipped; the bundle is ${kib.toFixed(1)} KiB: update the README.`;
    if (strict) {
      console.error(`STALE SIZE: ${say}`);
      process.exit(1);
    }
    console.warn(say);
  }
  return kib;
}

async function main(argv) {
  const files = await bundle();
  const kib = await checkSize(files, argv[0] === "--check");
  console.log(`pns-client.js: ${kib.toFixed(1)} KiB gzipped (budget ${BUDGET_KIB} KiB)`);
  if (argv[0] === "--check") return check(files);
  const outDir = argv[0] === "--out" && argv[1] ? path.resolve(argv[1]) : staticDir;
  await writeTo(outDir, files);
  console.log(`wrote ${NAMES.map((n) => path.join(path.relative(process.cwd(), outDir) || ".", n)).join(", ")}`);
}

await main(process.argv.slice(2));
