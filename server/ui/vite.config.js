// Builds the UI into the server package (server/src/amlpkg/server/static), served at /ui/.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/ui/",
  build: {
    outDir: "../src/amlpkg/server/static",
    emptyOutDir: true,
    assetsDir: "assets",
    // Source maps would double what the wheel ships; the sources are in server/ui.
    sourcemap: false,
    chunkSizeWarningLimit: 600,
  },
});
