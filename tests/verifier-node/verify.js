#!/usr/bin/env node
// An independent verifier of the signed config protocol, written from docs/protocol.md
// alone (no code shared with config_lib). Node 20's crypto for Ed25519, SHA-256, HKDF and
// AES-GCM; the `canonicalize` package (pinned in package-lock.json) for RFC 8785.
//
//   node verify.js ../vectors/envelopes.json          -> one JSON line per case:
//                                                        {"name", "verdict", "reason"}
//   node verify.js --check ../vectors/envelopes.json  -> compares with each case's own
//                                                        verdict and reason; exit 1 if any differ
//
// To add a message kind: write verify<Kind>(caseDoc, ctx) and add it to VERIFIERS.
//
//   node verify.js ../vectors/keysets.json           -> the root-signed keyset (docs/protocol.md,
//                                                        "Keyset"): each of `cases` and, named
//                                                        "envelope:<name>", each of `envelopes`

import crypto from 'node:crypto';
import fs from 'node:fs';
import canonicalize from 'canonicalize';

// --- constants from docs/protocol.md ------------------------------------------------------
const FORMAT = 1;
const MAX_POSITION = 2n ** 48n - 1n;
const MAX_SAFE = 2n ** 53n - 1n;
const ENVELOPE_MEMBERS = ['format', 'service', 'version', 'epoch', 'issued_at', 'key_id', 'config', 'signature'];
const ENVELOPE_OPTIONAL = ['retired'];
const RECORD_MEMBERS = ['format', 'type', 'service', 'epoch', 'version', 'envelope_sha256', 'issued_at', 'expires_at', 'key_id', 'signature'];
const RECORD_MAX_BYTES = 4096;
const KEYSET_MEMBERS = ['format', 'type', 'version', 'issued_at', 'expires_at', 'keys', 'void_epochs_from', 'root_key_id', 'signature'];
const KEYSET_MAX_BYTES = 16384;
const KEYSET_MAX_KEYS = 16;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const TIME_RE = /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})\.([0-9]{6})Z$/;
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

class Refusal extends Error {
  constructor (reason, message) {
    super(message);
    this.reason = reason;
  }
}

const refuse = (reason, message) => { throw new Refusal(reason, message); };

// --- parsing: size, UTF-8, nesting, strict I-JSON ------------------------------------------

/** A JSON number: its value and whether it was written as an integer (no '.', 'e', 'E'). */
class JNum {
  constructor (value, isInt, big) {
    this.value = value;
    this.isInt = isInt;
    this.big = big; // BigInt for integers
  }
}

function nestingDepth (text) {
  let depth = 0;
  let peak = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
    } else if (c === '[' || c === '{') {
      depth++;
      if (depth > peak) peak = depth;
    } else if ((c === ']' || c === '}') && depth > 0) {
      depth--;
    }
  }
  return peak;
}

class Parser {
  constructor (text) {
    this.text = text;
    this.i = 0;
  }

  fail (what) { refuse('malformed', `not JSON: ${what} at ${this.i}`); }

  ws () {
    const t = this.text;
    while (this.i < t.length && (t[this.i] === ' ' || t[this.i] === '\t' || t[this.i] === '\n' || t[this.i] === '\r')) this.i++;
  }

  document () {
    this.ws();
    const value = this.value();
    this.ws();
    if (this.i !== this.text.length) this.fail('extra data');
    return value;
  }

  value () {
    const c = this.text[this.i];
    if (c === '{') return this.object();
    if (c === '[') return this.array();
    if (c === '"') return this.string();
    if (c === '-' || (c >= '0' && c <= '9')) return this.number();
    for (const [word, value] of [['true', true], ['false', false], ['null', null]]) {
      if (this.text.startsWith(word, this.i)) {
        this.i += word.length;
        return value;
      }
    }
    return this.fail('unexpected character');
  }

  object () {
    this.i++;
    const obj = Object.create(null);
    this.ws();
    if (this.text[this.i] === '}') {
      this.i++;
      return obj;
    }
    for (;;) {
      this.ws();
      if (this.text[this.i] !== '"') this.fail('expected a member name');
      const key = this.string();
      this.ws();
      if (this.text[this.i] !== ':') this.fail("expected ':'");
      this.i++;
      this.ws();
      const value = this.value();
      if (Object.prototype.hasOwnProperty.call(obj, key)) refuse('malformed', `duplicate member ${key}`);
      obj[key] = value;
      this.ws();
      const c = this.text[this.i++];
      if (c === '}') return obj;
      if (c !== ',') this.fail("expected ',' or '}'");
    }
  }

  array () {
    this.i++;
    const arr = [];
    this.ws();
    if (this.text[this.i] === ']') {
      this.i++;
      return arr;
    }
    for (;;) {
      this.ws();
      arr.push(this.value());
      this.ws();
      const c = this.text[this.i++];
      if (c === ']') return arr;
      if (c !== ',') this.fail("expected ',' or ']'");
    }
  }

  string () {
    const t = this.text;
    this.i++;
    let out = '';
    for (;;) {
      if (this.i >= t.length) this.fail('unterminated string');
      const c = t[this.i++];
      const code = c.charCodeAt(0);
      if (c === '"') break;
      if (code < 0x20) this.fail('control character in string');
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = t[this.i++];
      const simple = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' }[e];
      if (simple !== undefined) {
        out += simple;
      } else if (e === 'u') {
        const hex = t.slice(this.i, this.i + 4);
        if (!/^[0-9A-Fa-f]{4}$/.test(hex)) this.fail('bad \\u escape');
        out += String.fromCharCode(parseInt(hex, 16));
        this.i += 4;
      } else {
        this.fail('bad escape');
      }
    }
    if (!out.isWellFormed()) refuse('malformed', 'lone surrogate in a string');
    return out;
  }

  number () {
    const re = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
    re.lastIndex = this.i;
    const m = re.exec(this.text);
    if (!m) this.fail('bad number');
    const lexeme = m[0];
    this.i += lexeme.length;
    if (/[.eE]/.test(lexeme)) {
      const value = Number(lexeme);
      if (!Number.isFinite(value)) refuse('malformed', 'number overflows a double');
      return new JNum(value, false, null);
    }
    if (lexeme.length > 17) refuse('malformed', 'integer outside I-JSON');
    const big = BigInt(lexeme);
    if (big > MAX_SAFE || big < -MAX_SAFE) refuse('malformed', 'integer outside I-JSON');
    return new JNum(Number(big), true, big);
  }
}

/** Checks 1-2: size, UTF-8, nesting depth (on the text), strict I-JSON, an object. */
function parseMessage (raw, maxBytes, maxDepth) {
  if (raw.length > maxBytes) refuse('too_large', `${raw.length} bytes`);
  let text;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(raw);
  } catch {
    refuse('malformed', 'not UTF-8');
  }
  if (nestingDepth(text) > maxDepth) refuse('too_deep', 'nested too deep');
  const doc = new Parser(text).document();
  if (!isObject(doc)) refuse('malformed', 'not an object');
  return doc;
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof JNum);
const has = (obj, k) => Object.prototype.hasOwnProperty.call(obj, k);
const isInt = (v) => v instanceof JNum && v.isInt;

/** The parsed tree as plain JS values (for RFC 8785). */
function plain (v) {
  if (v instanceof JNum) return v.value;
  if (Array.isArray(v)) return v.map(plain);
  if (isObject(v)) {
    const out = Object.create(null);
    for (const k of Object.keys(v)) out[k] = plain(v[k]);
    return out;
  }
  return v;
}

// --- field rules ---------------------------------------------------------------------------

function header (doc, members, optional) {
  const fmt = doc.format;
  if (!isInt(fmt)) refuse('malformed', 'format must be an integer');
  if (fmt.big !== BigInt(FORMAT)) refuse('unsupported_format', `format ${fmt.value}`);
  if (!has(doc, 'signature') || doc.signature === '' || doc.signature === null) refuse('unsigned', 'no signature');
  for (const m of members) if (!has(doc, m)) refuse('malformed', `lacks ${m}`);
  for (const k of Object.keys(doc)) if (!members.includes(k) && !optional.includes(k)) refuse('malformed', `extra ${k}`);
  const service = nonEmptyString(doc, 'service');
  if (!NAME_RE.test(service)) refuse('malformed', 'service is not a valid name');
  return service;
}

function position (doc, name) {
  const v = doc[name];
  if (!isInt(v) || v.big < 0n) refuse('malformed', `${name} must be a non-negative integer`);
  if (v.big > MAX_POSITION) refuse('out_of_range', `${name} at or above 2^48`);
  return v.big;
}

function nonEmptyString (doc, name) {
  const v = doc[name];
  if (typeof v !== 'string' || v === '') refuse('malformed', `${name} must be a non-empty string`);
  return v;
}

function daysFromCivil (y, m, d) { // Howard Hinnant's algorithm, proleptic Gregorian
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/** Microseconds since the Unix epoch (BigInt) of the one accepted time form. */
function parseTime (value, name) {
  const m = typeof value === 'string' ? TIME_RE.exec(value) : null;
  if (!m) refuse('malformed', `${name} is not YYYY-MM-DDTHH:MM:SS.ffffffZ`);
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number);
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  const dim = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][mo - 1];
  if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > dim || h > 23 || mi > 59 || s > 59) refuse('malformed', `${name} is not a valid time`);
  const seconds = BigInt(daysFromCivil(y, mo, d)) * 86400n + BigInt(h * 3600 + mi * 60 + s);
  return seconds * 1000000n + BigInt(m[7]);
}

/** Canonical standard base64 (padded, no whitespace, zero pad bits), or null. */
function base64Canonical (text) {
  if (typeof text !== 'string' || !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)) return null;
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : null;
}

function ciphertextProblem (obj) {
  if (obj.encrypted !== 'AES-256-GCM') return 'unknown algorithm';
  const keys = Object.keys(obj).sort();
  if (keys.join(',') !== 'ciphertext,encrypted,key_id,nonce') return 'members';
  if (typeof obj.key_id !== 'string' || !/^[0-9a-f]{16}$/.test(obj.key_id)) return 'key_id';
  const nonce = base64Canonical(obj.nonce);
  if (nonce === null || nonce.length !== 12) return 'nonce';
  const ct = base64Canonical(obj.ciphertext);
  if (ct === null || ct.length < 16) return 'ciphertext';
  return null;
}

function checkCiphertexts (v) {
  if (Array.isArray(v)) {
    v.forEach(checkCiphertexts);
  } else if (isObject(v)) {
    if (has(v, 'encrypted')) {
      const problem = ciphertextProblem(v);
      if (problem) refuse('bad_ciphertext', problem);
      return;
    }
    Object.values(v).forEach(checkCiphertexts);
  }
}

/** Checks 6-8: signature text, key, Ed25519 over the RFC 8785 form of the other members. */
function checkSignature (doc, trust) {
  const keyId = nonEmptyString(doc, 'key_id');
  if (typeof doc.signature !== 'string') refuse('malformed', 'signature must be a string');
  const signature = base64Canonical(doc.signature);
  if (signature === null || signature.length !== 64) refuse('bad_signature', 'signature is not canonical base64 of 64 bytes');
  const key = trust.get(keyId);
  if (!key) refuse('unknown_key', keyId);
  const unsigned = Object.create(null);
  for (const k of Object.keys(doc)) if (k !== 'signature') unsigned[k] = plain(doc[k]);
  const content = Buffer.from(canonicalize(unsigned), 'utf8');
  if (!crypto.verify(null, content, key, signature)) refuse('bad_signature', 'does not verify');
  return keyId;
}

// --- messages ------------------------------------------------------------------------------

function verifyEnvelopeBytes (raw, ctx, { last = null, maxBytes }) {
  const doc = parseMessage(raw, maxBytes, ctx.maxDepth);
  const service = header(doc, ENVELOPE_MEMBERS, ENVELOPE_OPTIONAL);
  const version = position(doc, 'version');
  const epoch = position(doc, 'epoch');
  nonEmptyString(doc, 'key_id');
  const issuedAt = parseTime(doc.issued_at, 'issued_at');
  if (!isObject(doc.config)) refuse('malformed', 'config must be an object');
  if (has(doc, 'retired')) {
    if (doc.retired !== true) refuse('malformed', 'retired must be true');
    if (Object.keys(doc.config).length) refuse('malformed', 'a tombstone has an empty config');
  }
  checkCiphertexts(doc.config);
  checkSignature(doc, ctx.trust);
  if (service !== ctx.service) refuse('service_mismatch', service);
  if (last) {
    const cmp = comparePos([epoch, version], last);
    if (cmp === 0) refuse('duplicate', 'already in force');
    if (cmp < 0) refuse('rollback', 'older than in force');
  }
  return { epoch, version, issuedAt, raw };
}

function verifyRecordBytes (raw, ctx) {
  const doc = parseMessage(raw, RECORD_MAX_BYTES, ctx.maxDepth);
  const service = header(doc, RECORD_MEMBERS, []);
  if (doc.type !== 'freshness') refuse('malformed', 'type');
  const epoch = position(doc, 'epoch');
  const version = position(doc, 'version');
  const digest = doc.envelope_sha256;
  if (version === 0n) {
    if (digest !== null) refuse('malformed', 'digest must be null for version 0');
  } else if (typeof digest !== 'string' || !/^[0-9a-f]{64}$/.test(digest)) {
    refuse('malformed', 'digest');
  }
  const issuedAt = parseTime(doc.issued_at, 'issued_at');
  const expiresAt = parseTime(doc.expires_at, 'expires_at');
  if (expiresAt <= issuedAt) refuse('malformed', 'expires_at must be later than issued_at');
  checkSignature(doc, ctx.trust);
  if (service !== ctx.service) refuse('service_mismatch', service);
  return { epoch, version, digest, issuedAt, expiresAt, raw };
}

function comparePos (a, b) {
  const [ae, av] = a.map(BigInt);
  const [be, bv] = b.map(BigInt);
  if (ae !== be) return ae < be ? -1 : 1;
  if (av !== bv) return av < bv ? -1 : 1;
  return 0;
}

/** The freshness rules: the newest record kept, the floor, the skew (in microseconds). */
class Gate {
  constructor (skewSeconds) {
    this.skew = BigInt(skewSeconds) * 1000000n;
    this.record = null;
    this.floor = null;
  }

  offer (rec, now) {
    if (now >= rec.expiresAt) refuse('expired', 'record expired');
    if (rec.issuedAt > now + this.skew) refuse('not_yet_valid', 'record from the future');
    if (this.record) {
      if (rec.issuedAt < this.record.issuedAt) refuse('record_rollback', 'older record');
      if (rec.issuedAt === this.record.issuedAt && rec.raw.equals(this.record.raw)) refuse('record_duplicate', 'same record');
    }
    this.record = rec;
    if (rec.version !== 0n && (this.floor === null || comparePos([rec.epoch, rec.version], this.floor) > 0)) {
      this.floor = [rec.epoch, rec.version];
    }
  }

  check (env, now) {
    if (env.issuedAt > now + this.skew) refuse('bad_issued_at', 'envelope from the future');
    const pos = [env.epoch, env.version];
    if (this.floor && comparePos(pos, this.floor) < 0) refuse('stale', 'older than a record named');
    const rec = this.record;
    if (!rec || rec.version === 0n || comparePos(pos, [rec.epoch, rec.version]) !== 0) return;
    if (crypto.createHash('sha256').update(env.raw).digest('hex') !== rec.digest) refuse('digest_mismatch', 'not the bytes named');
    if (env.issuedAt > rec.issuedAt + this.skew) refuse('bad_issued_at', 'issued after its record');
  }
}

function gateFor (c, key, ctx) {
  const gate = new Gate(c.skew_s ?? 30);
  for (const prior of c[key] ?? []) {
    gate.offer(verifyRecordBytes(Buffer.from(prior.message, 'utf8'), ctx), parseTime(prior.at, 'at'));
  }
  return gate;
}

const rawOf = (c) => (has(c, 'message_b64') ? Buffer.from(c.message_b64, 'base64') : Buffer.from(c.message, 'utf8'));

function verifyEnvelope (c, ctx) {
  const env = verifyEnvelopeBytes(rawOf(c), ctx, { last: c.last ?? null, maxBytes: c.max_bytes ?? ctx.maxBytes });
  if (has(c, 'now')) gateFor(c, 'records', ctx).check(env, parseTime(c.now, 'now'));
}

function verifyFreshness (c, ctx) {
  const gate = gateFor(c, 'prior', ctx);
  gate.offer(verifyRecordBytes(rawOf(c), ctx), parseTime(c.now, 'now'));
}

function verifyReportRequest () {
  // Unsigned, payload reserved: never read; every request is acted on.
}

function verifyName (c) {
  if (!NAME_RE.test(c.message)) refuse('invalid_name', c.message);
}

function keyIdOf (publicKey) {
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  return crypto.createHash('sha256').update(raw).digest('hex').slice(0, 16);
}

function verifyTrustStore (c) {
  const blocks = c.message.match(/-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/g);
  if (!blocks) refuse('key_file', 'no PEM public key');
  const ids = new Set();
  for (const block of blocks) {
    let key;
    try {
      key = crypto.createPublicKey({ key: block, format: 'pem' });
    } catch {
      refuse('key_file', 'unreadable public key');
    }
    if (key.asymmetricKeyType !== 'ed25519') refuse('key_file', 'not an Ed25519 key');
    ids.add(keyIdOf(key));
  }
  const got = [...ids].sort();
  if (JSON.stringify(got) !== JSON.stringify(c.key_ids)) throw new Error(`key ids ${got} != ${c.key_ids}`);
}

function dataKeyId (key) {
  return crypto.createHash('sha256').update(Buffer.concat([Buffer.from('signed-config/data-key-id/v1\0'), key])).digest('hex').slice(0, 16);
}

function verifySecret (c, ctx) {
  const obj = new Parser(c.message).document();
  if (!isObject(obj) || !has(obj, 'encrypted') || ciphertextProblem(obj)) refuse('secret_decrypt', 'not a ciphertext object');
  if (obj.key_id !== dataKeyId(ctx.dataKey)) refuse('secret_decrypt', 'no such data key');
  const nonce = base64Canonical(obj.nonce);
  const ct = base64Canonical(obj.ciphertext);
  const aad = Buffer.concat([Buffer.from('signed-config/secret/v1\0'), Buffer.from(c.service), Buffer.from('\0'), Buffer.from(c.path)]);
  let text;
  try {
    const decipher = crypto.createDecipheriv('aes-256-gcm', ctx.dataKey, nonce);
    decipher.setAAD(aad);
    decipher.setAuthTag(ct.subarray(ct.length - 16));
    const bytes = Buffer.concat([decipher.update(ct.subarray(0, ct.length - 16)), decipher.final()]);
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    refuse('secret_decrypt', 'does not decrypt');
  }
  if (text !== c.plaintext) throw new Error(`plaintext ${text} != ${c.plaintext}`);
}

// --- applied reports (docs/protocol.md, "Report signature") --------------------------------

const REPORT_MAX_BYTES = 16384;
const REPORT_STRINGS = ['instance', 'service', 'status', 'time', 'public_key', 'key_id'];

/** Checks 1-6 against the topic's service and instance, then the manager's pin (7) and
 * replay floor (8): `pinned` (base64 key, or null: pinned on first use), `high` (time or null). */
function verifyReport (c, ctx) {
  let doc;
  try {
    doc = parseMessage(rawOf(c), c.max_bytes ?? REPORT_MAX_BYTES, ctx.maxDepth);
  } catch (e) {
    // For a report every parsing failure but the size is "malformed" (too deep included).
    if (e instanceof Refusal && e.reason === 'too_deep') refuse('malformed', e.message);
    throw e;
  }
  if (!has(doc, 'signature') || doc.signature === '' || doc.signature === null) refuse('unsigned', 'no signature');
  if (typeof doc.signature !== 'string') refuse('malformed', 'signature must be a string');
  for (const m of REPORT_STRINGS) nonEmptyString(doc, m);
  const time = parseTime(doc.time, 'time');
  const unsigned = Object.create(null);
  for (const k of Object.keys(doc)) if (k !== 'signature') unsigned[k] = plain(doc[k]);
  const content = Buffer.from(canonicalize(unsigned), 'utf8');
  const pub = base64Canonical(doc.public_key);
  if (pub === null || pub.length !== 32) refuse('bad_signature', 'public_key is not canonical base64 of 32 bytes');
  if (doc.key_id !== crypto.createHash('sha256').update(pub).digest('hex').slice(0, 16)) refuse('bad_signature', 'key_id is not the id of public_key');
  const signature = base64Canonical(doc.signature);
  if (signature === null || signature.length !== 64) refuse('bad_signature', 'signature is not canonical base64 of 64 bytes');
  let good = false;
  try {
    const key = crypto.createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, pub]), format: 'der', type: 'spki' });
    good = crypto.verify(null, content, key, signature);
  } catch {
    good = false;
  }
  if (!good) refuse('bad_signature', 'does not verify');
  if (doc.service !== ctx.service || doc.instance !== c.instance) refuse('identity_mismatch', `${doc.service}/${doc.instance}`);
  if (c.pinned !== null && doc.public_key !== c.pinned) refuse('key_mismatch', 'not the pinned key');
  if (c.high !== null && time < parseTime(c.high, 'high') && doc.status !== 'offline') refuse('replayed', 'older than the latest genuine report');
}

const VERIFIERS = {
  envelope: verifyEnvelope,
  freshness: verifyFreshness,
  report_request: verifyReportRequest,
  name: verifyName,
  trust_store: verifyTrustStore,
  secret: verifySecret,
  report: verifyReport,
};

// --- the keyset ----------------------------------------------------------------------------

function publicKeyOf (raw) {
  return crypto.createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' });
}

/** Keyset checks 1-11 of docs/protocol.md ("Keyset", "Verification"). */
function verifyKeysetBytes (raw, { roots, current, now, maxDepth }) {
  const doc = parseMessage(raw, KEYSET_MAX_BYTES, maxDepth);
  const fmt = doc.format;
  if (!isInt(fmt)) refuse('malformed', 'format must be an integer');
  if (fmt.big !== BigInt(FORMAT)) refuse('unsupported_format', `format ${fmt.value}`);
  if (!has(doc, 'signature') || doc.signature === '' || doc.signature === null) refuse('unsigned', 'no signature');
  for (const m of KEYSET_MEMBERS) if (!has(doc, m)) refuse('malformed', `lacks ${m}`);
  for (const k of Object.keys(doc)) if (!KEYSET_MEMBERS.includes(k)) refuse('malformed', `extra ${k}`);
  if (doc.type !== 'keyset') refuse('malformed', 'type');
  const version = position(doc, 'version');
  if (version < 1n) refuse('malformed', 'version must be at least 1');
  const issuedAt = parseTime(doc.issued_at, 'issued_at');
  const expiresAt = parseTime(doc.expires_at, 'expires_at');
  if (expiresAt <= issuedAt) refuse('malformed', 'expires_at must be later than issued_at');
  const entries = doc.keys;
  if (!Array.isArray(entries) || entries.length < 1 || entries.length > KEYSET_MAX_KEYS) refuse('malformed', 'keys');
  const keys = new Map();
  for (const entry of entries) {
    if (!isObject(entry) || Object.keys(entry).sort().join(',') !== 'key_id,public_key') refuse('malformed', 'key entry members');
    if (typeof entry.key_id !== 'string' || typeof entry.public_key !== 'string') refuse('malformed', 'key entry types');
    const bytes = base64Canonical(entry.public_key);
    if (bytes === null || bytes.length !== 32) refuse('malformed', 'public_key is not canonical base64 of 32 bytes');
    const id = crypto.createHash('sha256').update(bytes).digest('hex').slice(0, 16);
    if (id !== entry.key_id) refuse('malformed', 'key_id is not the id of its key');
    if (keys.has(id)) refuse('malformed', 'the same key twice');
    keys.set(id, publicKeyOf(bytes));
  }
  let voidFrom = null;
  if (doc.void_epochs_from !== null) {
    voidFrom = position(doc, 'void_epochs_from');
    if (voidFrom < 1n) refuse('malformed', 'void_epochs_from');
  }
  const rootId = nonEmptyString(doc, 'root_key_id');
  if (typeof doc.signature !== 'string') refuse('malformed', 'signature must be a string');
  const signature = base64Canonical(doc.signature);
  if (signature === null || signature.length !== 64) refuse('bad_signature', 'signature is not canonical base64 of 64 bytes');
  const root = roots.get(rootId);
  if (!root) refuse('unknown_key', rootId);
  const unsigned = Object.create(null);
  for (const k of Object.keys(doc)) if (k !== 'signature') unsigned[k] = plain(doc[k]);
  if (!crypto.verify(null, Buffer.from(canonicalize(unsigned), 'utf8'), root, signature)) refuse('bad_signature', 'does not verify');
  if (now !== null && now >= expiresAt) refuse('keyset_expired', 'expired');
  if (current) {
    if (Buffer.compare(current.raw, raw) === 0) refuse('keyset_duplicate', 'in force');
    if (version <= current.version) refuse('keyset_rollback', 'not newer than the keyset in force');
  }
  return { version, keys, voidFrom, raw };
}

/** An envelope under a keyset: its keys are the trust store; a void position orders
 *  nothing and an envelope at a void epoch is refused (docs/protocol.md, "Epoch floor reset"). */
function verifyUnderKeyset (c, ctx) {
  const keyset = verifyKeysetBytes(Buffer.from(c.keyset, 'utf8'), { ...ctx, current: null });
  let last = c.last ?? null;
  if (last && keyset.voidFrom !== null && BigInt(last[0]) >= keyset.voidFrom) last = null;
  const env = verifyEnvelopeBytes(Buffer.from(c.message, 'utf8'), { ...ctx, trust: keyset.keys }, { last, maxBytes: 262144 });
  if (keyset.voidFrom !== null && env.epoch >= keyset.voidFrom) refuse('void_epoch', 'void epoch');
}

export function runKeysets (vectors) {
  const roots = new Map();
  const rootRaw = Buffer.from(vectors.keys.root.public_hex, 'hex');
  roots.set(crypto.createHash('sha256').update(rootRaw).digest('hex').slice(0, 16), publicKeyOf(rootRaw));
  const ctx = { roots, now: parseTime(vectors.now, 'now'), maxDepth: vectors.max_depth, service: vectors.service };
  const outcome = (name, fn) => {
    try {
      fn();
      return { name, verdict: 'accept', reason: null };
    } catch (err) {
      if (err instanceof Refusal) return { name, verdict: 'refuse', reason: err.reason };
      return { name, verdict: 'error', reason: String(err && err.message) };
    }
  };
  const results = vectors.cases.map((c) => outcome(c.name, () => {
    const current = c.current ? verifyKeysetBytes(Buffer.from(c.current, 'utf8'), { ...ctx, current: null, now: null }) : null;
    const keyset = verifyKeysetBytes(Buffer.from(c.message, 'utf8'), { ...ctx, current });
    if (c.expect === 'ok') {
      const ids = [...keyset.keys.keys()].sort();
      if (JSON.stringify(ids) !== JSON.stringify(c.key_ids)) throw new Error(`key ids ${ids} != ${c.key_ids}`);
      const voidFrom = keyset.voidFrom === null ? null : Number(keyset.voidFrom);
      if (voidFrom !== c.void_epochs_from) throw new Error(`void ${voidFrom} != ${c.void_epochs_from}`);
    }
  }));
  for (const c of vectors.envelopes) results.push(outcome(`envelope:${c.name}`, () => verifyUnderKeyset(c, ctx)));
  return results;
}

// --- driver --------------------------------------------------------------------------------

function context (vectors) {
  const trust = new Map();
  for (const k of [vectors.keys.trusted]) {
    const raw = Buffer.from(k.public_hex, 'hex');
    const key = crypto.createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' });
    trust.set(crypto.createHash('sha256').update(raw).digest('hex').slice(0, 16), key);
  }
  const sec = vectors.secrets;
  const derived = Buffer.from(crypto.hkdfSync('sha256', Buffer.from(sec.master_key_hex, 'hex'),
    Buffer.from('signed-config/data-key/v1'), Buffer.from(`service:${vectors.service}`), 32));
  if (derived.toString('hex') !== sec.stt_data_key_hex) throw new Error('data key derivation differs');
  if (dataKeyId(derived) !== sec.stt_data_key_id) throw new Error('data key id differs');
  return {
    service: vectors.service,
    trust,
    maxBytes: vectors.max_bytes,
    maxDepth: vectors.max_depth,
    dataKey: derived,
  };
}

export function run (vectors) {
  const ctx = context(vectors);
  return vectors.cases.map((c) => {
    const verifier = VERIFIERS[c.kind];
    if (!verifier) return { name: c.name, verdict: 'unknown_kind', reason: c.kind };
    try {
      verifier(c, ctx);
      return { name: c.name, verdict: 'accept', reason: null };
    } catch (err) {
      if (err instanceof Refusal) return { name: c.name, verdict: 'refuse', reason: err.reason };
      return { name: c.name, verdict: 'error', reason: String(err && err.message) };
    }
  });
}

function main (argv) {
  const check = argv.includes('--check');
  const file = argv.filter((a) => a !== '--check')[0] ?? new URL('../vectors/envelopes.json', import.meta.url).pathname;
  const vectors = JSON.parse(fs.readFileSync(file, 'utf8'));
  const keysets = Boolean(vectors.keys && vectors.keys.root);
  const results = keysets ? runKeysets(vectors) : run(vectors);
  if (!check) {
    for (const r of results) process.stdout.write(JSON.stringify(r) + '\n');
    return 0;
  }
  let differ = 0;
  const expected = keysets
    ? [...vectors.cases, ...vectors.envelopes].map((c) => ({ verdict: c.expect === 'ok' ? 'accept' : 'refuse', reason: c.expect === 'ok' ? null : c.expect }))
    : vectors.cases;
  results.forEach((r, i) => {
    const c = expected[i];
    if (r.verdict !== c.verdict || r.reason !== c.reason) {
      differ++;
      process.stdout.write(`DIFFER ${r.name}: node ${r.verdict}/${r.reason}, vector ${c.verdict}/${c.reason}\n`);
    }
  });
  process.stdout.write(`${results.length - differ} of ${results.length} cases agree\n`);
  return differ ? 1 : 0;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = main(process.argv.slice(2));
