import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** @type {import('next').NextConfig} */
const nextConfig = {
  // Emit .next/standalone/server.js with only the files it needs at run time.
  output: 'standalone',
  // Trace from this directory, so server.js lands at the top of .next/standalone
  // even when a parent directory holds another lockfile.
  outputFileTracingRoot: path.dirname(fileURLToPath(import.meta.url)),
  // The dashboard serves no raster images, so skip the image optimizer and keep
  // sharp and its ~19 MB of libvips binaries out of the standalone output.
  images: { unoptimized: true },
  outputFileTracingExcludes: {
    '*': ['node_modules/sharp/**', 'node_modules/@img/**'],
  },
  poweredByHeader: false,
  // ESLint is not a dependency of this example.
  eslint: { ignoreDuringBuilds: true },
};

export default nextConfig;
