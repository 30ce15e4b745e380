// The client as a package people install: what `npm pack` puts in it, that
// the README's bundler example builds from the packed package alone (plus its
// dependency), and that the types declare the whole public API.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { build } from "esbuild";

import { PNSClient } from "../src/pns.js";
import { tempDir } from "./support/pns.js";

const here = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const tmp = tempDir("pns-pack-");
let packed; // npm pack's report
let installed; // the unpacked package, as node_modules/pns-client of an application

before(() => {
  const out = execFileSync("npm", ["pack", "--json", "--pack-destination", tmp.dir], { cwd: here, encoding: "utf8" });
  [packed] = JSON.parse(out.slice(out.indexOf("[")));
  installed = path.join(tmp.dir, "app", "node_modules", "pns-client");
  mkdirSync(installed, { recursive: true });
  execFileSync("tar", ["-xzf", path.join(tmp.dir, packed.filename), "-C", installed, "--strip-components=1"]);
});

after(() => tmp.remove());

test("npm pack: the ES module, its types and README, nothing else", () => {
  const files = packed.files.map((f) => f.path).sort();
  const sources = readdirSync(path.join(here, "src")).map((name) => `src/${name}`);
  assert.deepEqual(files, ["README.md", "package.json", "pns.d.ts", ...sources].sort());
  const manifest = JSON.parse(readFileSync(path.join(installed, "package.json"), "utf8"));
  assert.equal(manifest.private, undefined, "installable: not private");
  assert.equal(manifest.type, "module");
  assert.equal(manifest.exports["."].types, "./pns.d.ts");
  assert.deepEqual(Object.keys(manifest.dependencies), ["socket.io-client"]);
});

test("the README's bundler example builds against the packed package", async () => {
  const readme = readFileSync(path.join(installed, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## With a bundler"));
  const example = section.match(/```js\n([\s\S]*?)```/)[1];
  assert.match(example, /from "pns-client"/);
  const app = path.dirname(path.dirname(installed));
  writeFileSync(path.join(app, "main.js"), example);
  const result = await build({
    entryPoints: [path.join(app, "main.js")],
    absWorkingDir: app,
    bundle: true,
    format: "esm",
    platform: "browser",
    write: false,
    logLevel: "silent",
    metafile: true,
    // socket.io-client, as the application's npm install would have put it beside pns-client.
    nodePaths: [path.join(here, "node_modules")],
  });
  const code = result.outputFiles[0].text;
  assert.match(code, /get-new-notifications/, "the client is in the bundle");
  assert.match(code, /navigator\.locks/, "with its tab sharing");
  const inputs = Object.keys(result.metafile.inputs);
  assert.ok(inputs.includes("node_modules/pns-client/src/pns.js"), `the packed module is what was bundled: ${inputs}`);
  assert.ok(!inputs.some((input) => input.includes("clients/js/src")), "nothing from the source tree");
});

test("pns.d.ts declares every public member of PNSClient", () => {
  const types = readFileSync(path.join(installed, "pns.d.ts"), "utf8");
  const declared = types.slice(types.indexOf("export declare class PNSClient"));
  const members = Object.getOwnPropertyNames(PNSClient.prototype).filter((n) => n !== "constructor" && !n.startsWith("_"));
  assert.ok(members.length >= 10);
  for (const name of members) assert.match(declared, new RegExp(`\\b${name}\\b[(:]`), `${name} is declared`);
  for (const option of ["shareAcrossTabs", "shareKey", "token", "auth", "withCredentials"]) {
    assert.match(types, new RegExp(`\\b${option}\\?:`), `option ${option} is declared`);
  }
});
