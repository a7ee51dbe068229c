// The bytecode cache, in exactly the Rust host's format, so that one cache
// directory serves both: the same keys, the same file header, the same
// layout (`<cacheDir>/v1/bytecode/<hex key>.qjsc`).
//
// Key: BLAKE3 over "nexus-cache-key", the format version (u32 LE), the
// artifact kind (1 byte), then each field as a u64 LE length and its bytes:
// the guest build's fingerprint (hex text), the handler's name, its source,
// and the two compile flags [stripSource, stripDebug].
//
// File: a 96-byte header, then the payload.
//   0..8 magic "NXSCACHE" | 8..12 format version u32 LE | 12 kind, 3 zeros
//   16..48 key | 48..56 payload length u64 LE | 56..64 what building the
//   payload took, in microseconds, u64 LE | 64..96 BLAKE3 of bytes 56..64,
//   then the payload
// (The host's disk tier evicts by that build time; this one only writes it.)
// A file that fails any check is deleted and recompiled: never trusted.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { createBLAKE3 } from 'hash-wasm';

export const FORMAT_VERSION = 2;
export const KIND_BYTECODE = 2;
const MAGIC = Buffer.from('NXSCACHE');
const HEADER_LEN = 96;
const encoder = new TextEncoder();

// hash-wasm's BLAKE3 (WebAssembly): about 40× the speed of a pure-JS one
// on a 0.5 MB handler, whose source every lookup hashes.
let hasher;

/** Makes BLAKE3 ready; call (and await) once before anything here. */
export async function ready() {
  hasher ??= await createBLAKE3();
}

/** BLAKE3 of the concatenated `parts`, 32 bytes. */
export function blake3(...parts) {
  hasher.init();
  for (const part of parts) hasher.update(part);
  return hasher.digest('binary');
}

export function bytesToHex(bytes) {
  return Buffer.from(bytes).toString('hex');
}

function u64(n) {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

/** The key of a handler's bytecode, as the host computes it (32 bytes). */
export function bytecodeKey(fingerprint, name, source, { stripSource, stripDebug }) {
  const version = Buffer.alloc(4);
  version.writeUInt32LE(FORMAT_VERSION);
  const parts = [encoder.encode('nexus-cache-key'), version, Uint8Array.of(KIND_BYTECODE)];
  const fields = [
    encoder.encode(fingerprint),
    encoder.encode(name),
    encoder.encode(source),
    Uint8Array.of(stripSource ? 1 : 0, stripDebug ? 1 : 0),
  ];
  for (const field of fields) parts.push(u64(field.length), field);
  return blake3(...parts);
}

/** A cache file: the header, then `payload`, which took `costMs` to build. */
export function encode(kind, key, payload, costMs = 0) {
  const header = Buffer.alloc(HEADER_LEN);
  MAGIC.copy(header, 0);
  header.writeUInt32LE(FORMAT_VERSION, 8);
  header[12] = kind;
  Buffer.from(key).copy(header, 16);
  header.writeBigUInt64LE(BigInt(payload.length), 48);
  header.writeBigUInt64LE(BigInt(Math.max(0, Math.round(costMs * 1000))), 56);
  Buffer.from(blake3(header.subarray(56, 64), payload)).copy(header, 64);
  return Buffer.concat([header, payload]);
}

/** The payload of `file` if every field checks, else why not (a string). */
export function decode(kind, key, file) {
  if (file.length < HEADER_LEN) return { damage: `truncated: ${file.length} bytes, shorter than the header` };
  if (!file.subarray(0, 8).equals(MAGIC)) return { damage: 'not a Nexus cache file (bad magic)' };
  const version = file.readUInt32LE(8);
  if (version !== FORMAT_VERSION) return { damage: `format version ${version}, expected ${FORMAT_VERSION}` };
  if (file[12] !== kind || file[13] || file[14] || file[15]) return { damage: `holds artifact kind ${file[12]}, not the one asked for` };
  if (!file.subarray(16, 48).equals(Buffer.from(key))) return { damage: "holds another key's entry" };
  const length = file.readBigUInt64LE(48);
  const payload = file.subarray(HEADER_LEN);
  if (length !== BigInt(payload.length)) return { damage: `payload is ${payload.length} bytes, header says ${length}` };
  if (!file.subarray(64, 96).equals(Buffer.from(blake3(file.subarray(56, 64), payload)))) return { damage: 'payload checksum mismatch' };
  return { payload: new Uint8Array(payload) };
}

/** One tier's figures, as the host's `runtime-stats` record has them. */
export function tierStats() {
  return { hits: 0, misses: 0, entries: 0, bytes: 0, capacity_bytes: 0, evictions: 0 };
}

/** An LRU of byte arrays bounded by their total length. */
export class MemoryTier {
  constructor(capacity) {
    this.map = new Map();
    this.stats = { ...tierStats(), capacity_bytes: capacity };
  }

  get(hex) {
    const value = this.map.get(hex);
    if (value === undefined) {
      this.stats.misses++;
      return undefined;
    }
    // Most recently used last.
    this.map.delete(hex);
    this.map.set(hex, value);
    this.stats.hits++;
    return value;
  }

  insert(hex, value) {
    const capacity = this.stats.capacity_bytes;
    // An entry larger than the whole budget skips memory.
    if (value.length > capacity || this.map.has(hex)) return;
    while (this.stats.bytes + value.length > capacity) {
      const [oldest, old] = this.map.entries().next().value;
      this.map.delete(oldest);
      this.stats.bytes -= old.length;
      this.stats.entries--;
      this.stats.evictions++;
    }
    this.map.set(hex, value);
    this.stats.bytes += value.length;
    this.stats.entries++;
  }
}

/**
 * `<cacheDir>/v1/bytecode`, used only if this user owns it and neither
 * group nor others may write it (as the host requires); otherwise the tier
 * holds nothing, after one warning. Failures never fail a caller.
 */
export class DiskTier {
  constructor(cacheDir, warn) {
    this.warn = warn;
    this.stats = tierStats();
    this.corrupt = 0;
    this.errors = 0;
    this.dir = null;
    const version = join(cacheDir, 'v1');
    const dir = join(version, 'bytecode');
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      for (const path of [version, dir]) {
        const meta = fs.statSync(path);
        const me = process.getuid?.();
        if (me !== undefined && meta.uid !== me) {
          throw new Error(`${path} is owned by uid ${meta.uid}, not by this user (uid ${me})`);
        }
        if (meta.mode & 0o022) {
          throw new Error(`${path} is writable by group or others (mode ${(meta.mode & 0o7777).toString(8)})`);
        }
      }
      this.dir = dir;
      for (const name of fs.readdirSync(dir)) {
        if (/^[0-9a-f]{64}\.qjsc$/.test(name)) {
          this.stats.entries++;
          this.stats.bytes += fs.statSync(join(dir, name)).size;
        }
      }
    } catch (e) {
      this.unavailable = e.message;
      this.warn(`cache directory ${cacheDir} not used: ${e.message}; serving from memory`);
    }
  }

  path(hex) {
    return join(this.dir, `${hex}.qjsc`);
  }

  /** The verified payload for `key`, or undefined; a damaged file is deleted. */
  read(key) {
    if (!this.dir) return undefined;
    const hex = bytesToHex(key);
    const path = this.path(hex);
    let file;
    try {
      const meta = fs.statSync(path);
      if (!meta.isFile()) throw Object.assign(new Error('not a regular file'), { damage: true });
      file = fs.readFileSync(path);
    } catch (e) {
      if (e.code !== 'ENOENT') {
        if (e.damage) this.discard(path, e.message);
        else this.errors++;
      }
      this.stats.misses++;
      return undefined;
    }
    const { payload, damage } = decode(KIND_BYTECODE, key, file);
    if (damage) {
      this.discard(path, damage);
      this.stats.misses++;
      return undefined;
    }
    // The host's LRU order comes from modification times.
    const now = new Date();
    try { fs.utimesSync(path, now, now); } catch { /* best effort */ }
    this.stats.hits++;
    return payload;
  }

  discard(path, why) {
    this.warn(`damaged cache entry ${path} (${why}); removed, will recompile`);
    this.corrupt++;
    try {
      const size = fs.statSync(path).size;
      fs.unlinkSync(path);
      this.stats.entries--;
      this.stats.bytes -= size;
    } catch { /* already gone */ }
  }

  /** Stores the entry (built in `costMs`) atomically: a temporary beside it, then rename. */
  write(key, payload, costMs) {
    if (!this.dir) return;
    const hex = bytesToHex(key);
    const file = encode(KIND_BYTECODE, key, payload, costMs);
    const temp = join(this.dir, `.tmp-${hex}-${randomBytes(8).toString('hex')}`);
    try {
      fs.writeFileSync(temp, file, { flag: 'wx', mode: 0o600 });
      fs.renameSync(temp, this.path(hex));
      this.stats.entries++;
      this.stats.bytes += file.length;
    } catch (e) {
      this.errors++;
      try { fs.unlinkSync(temp); } catch { /* never written */ }
      this.warn(`cache write failed: ${e.message}`);
    }
  }
}
