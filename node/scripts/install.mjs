// `npm install`: use the shipped binary for this platform if there is one;
// else, in the workspace, build it from source with cargo; else the jco
// backend serves. Never fails the install: jco is the fallback.
import { existsSync } from 'node:fs';
import { nativePath, nativeTarget } from '../src/native.js';
import { buildable, buildNative } from './native.mjs';

if (!existsSync(nativePath())) {
  if (buildable()) {
    try {
      console.error(`nexus-runtime: building the native backend for ${nativeTarget()} with cargo`);
      buildNative();
    } catch (e) {
      console.error(`nexus-runtime: the native backend did not build (${e.message}); the jco backend will serve`);
    }
  } else {
    console.error(`nexus-runtime: no native binary for ${nativeTarget()}; the jco backend will serve`);
  }
}
