// Bundles the client with esbuild into dist/ (index.html, assets/app.js, assets/app.css).
// Run through `bash scripts/web-build.sh` (npm ci + type check + this).
import { build } from "esbuild";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";

const out = new URL("./dist/", import.meta.url).pathname;
rmSync(out, { recursive: true, force: true });
mkdirSync(out + "assets", { recursive: true });
await build({
  entryPoints: { app: "src/main.tsx" },
  bundle: true,
  minify: true,
  sourcemap: true,
  format: "esm",
  target: ["chrome110", "firefox110", "safari16"],
  outdir: out + "assets",
  define: { "process.env.NODE_ENV": '"production"' },
  logLevel: "warning",
});
copyFileSync("index.html", out + "index.html");
copyFileSync("src/app.css", out + "assets/app.css");
console.log(`web client built in ${out}`);
