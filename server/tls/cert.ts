// The server's TLS material: a certificate and key given by the operator (--tls-cert/--tls-key), or a
// self-signed one made once at first start and kept in the data dir (tls/cert.pem, tls/key.pem, 0600).
// The self-signed certificate is made by the `openssl` CLI (on every Debian/Ubuntu, no npm package
// needed; Node's crypto makes keys but cannot sign an X.509 certificate). Nothing secret goes through
// its argv: the key is written by openssl straight into a 0700 directory.
import { execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { isIP } from 'node:net';
import { join } from 'node:path';

export interface TlsMaterial {
  cert: string;
  key: string;
  /** SHA-256 of the leaf certificate, `AB:CD:…` (what `openssl x509 -fingerprint -sha256` prints). */
  fingerprint: string;
  /** Made by this server (no CA signs it: clients pin `fingerprint` or trust `cert`). */
  selfSigned: boolean;
  /** True when this start made it. */
  generated: boolean;
  certFile: string;
}

export class TlsError extends Error {
  constructor(readonly code: 'TLS_FILE' | 'TLS_INVALID' | 'TLS_OPENSSL', message: string) {
    super(message);
  }
}

export function fingerprintOf(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256;
}

function readPem(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new TlsError('TLS_FILE', `cannot read the TLS ${what} ${file}: ${(err as Error).message}`);
  }
}

/** The operator's certificate and key, checked to belong together before the server listens. */
export function loadTls(certFile: string, keyFile: string): TlsMaterial {
  const cert = readPem(certFile, 'certificate');
  const key = readPem(keyFile, 'key');
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new TlsError('TLS_INVALID', `${certFile} is not a PEM certificate: ${(err as Error).message}`);
  }
  let matches = false;
  try {
    matches = x509.checkPrivateKey(createPrivateKey({ key, format: 'pem' }));
  } catch (err) {
    throw new TlsError('TLS_INVALID', `${keyFile} is not a PEM private key (an encrypted key is not supported): ${(err as Error).message}`);
  }
  if (!matches) throw new TlsError('TLS_INVALID', `${keyFile} is not the private key of ${certFile}`);
  return { cert, key, fingerprint: x509.fingerprint256, selfSigned: x509.issuer === x509.subject, generated: false, certFile };
}

/** Names the self-signed certificate is valid for: loopback, this host, and the bound address. */
export function subjectAltNames(bindHost: string): string {
  const names = new Set(['DNS:localhost', 'IP:127.0.0.1', 'IP:::1']);
  const h = hostname();
  if (/^[A-Za-z0-9.-]{1,253}$/.test(h)) names.add(`DNS:${h}`);
  if (isIP(bindHost) && bindHost !== '0.0.0.0' && bindHost !== '::') names.add(`IP:${bindHost}`);
  else if (!isIP(bindHost) && /^[A-Za-z0-9.-]{1,253}$/.test(bindHost)) names.add(`DNS:${bindHost}`);
  return [...names].join(',');
}

/** The data dir's self-signed certificate, made at the first start that needs one. */
export function selfSignedTls(dataDir: string, bindHost: string): TlsMaterial {
  const dir = join(dataDir, 'tls');
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  if (existsSync(certFile) && existsSync(keyFile)) {
    chmodSync(keyFile, 0o600);
    return { ...loadTls(certFile, keyFile), selfSigned: true };
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  // Made under temporary names and renamed, so a start killed half-way leaves no half pair behind.
  const tmpCert = `${certFile}.tmp`;
  const tmpKey = `${keyFile}.tmp`;
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-sha256',
      '-days', '3650', '-subj', '/CN=anybios', '-addext', `subjectAltName=${subjectAltNames(bindHost)}`,
      '-keyout', tmpKey, '-out', tmpCert,
    ], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
  } catch (err) {
    rmSync(tmpCert, { force: true });
    rmSync(tmpKey, { force: true });
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    const why = e.code === 'ENOENT' ? 'the openssl command is not installed (apt-get install openssl)' : String(e.stderr ?? e.message).trim();
    throw new TlsError('TLS_OPENSSL', `cannot make a self-signed certificate: ${why}; give --tls-cert and --tls-key, or --insecure-http`);
  }
  chmodSync(tmpKey, 0o600);
  chmodSync(tmpCert, 0o600);
  renameSync(tmpKey, keyFile);
  renameSync(tmpCert, certFile);
  return { ...loadTls(certFile, keyFile), selfSigned: true, generated: true };
}
