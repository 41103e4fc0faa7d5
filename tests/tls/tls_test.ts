import { deepEqual, match, ok, rejects } from "node:assert/strict";
import {
  connect,
  ConnectError,
  createSelfSigned,
  formatFingerprint,
  loadTlsIdentity,
  MessageType,
  type TlsIdentity,
  TlsVerifyError,
} from "../_lib.ts";
import { rawConnect, startServer, type TestServer, waitFor } from "../_utils.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One echo round trip through a session. */
async function echo(address: string, options: Parameters<typeof connect>[1]): Promise<string> {
  await using session = await connect(address, options);
  await session.send(MessageType.Data, encoder.encode("over tls"));
  return decoder.decode((await session.read())?.body);
}

async function tlsServer(identity: TlsIdentity, options = {}): Promise<TestServer> {
  return await startServer({ tls: identity, ...options });
}

const identity = await createSelfSigned();

Deno.test("a TLS server is verified by CA, by pin, or by known hosts", async (t) => {
  await using s = await tlsServer(identity);
  await t.step("--ca: the certificate is the trust anchor, name and address checked", async () => {
    deepEqual(await echo(s.address, { tls: { caCerts: [identity.cert] } }), "over tls");
  });
  await t.step("--pin in openssl's form (colons, upper case)", async () => {
    const pin = formatFingerprint(identity.fingerprint);
    match(pin, /^sha256:([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    deepEqual(await echo(s.address, { tls: { pin } }), "over tls");
  });
  await t.step("--pin of another certificate: refused, both fingerprints shown", async () => {
    const other = await createSelfSigned();
    await rejects(echo(s.address, { tls: { pin: other.fingerprint } }), (e: unknown) => {
      ok(e instanceof TlsVerifyError);
      deepEqual(e.code, "pin_mismatch");
      deepEqual([e.expected, e.actual], [other.fingerprint, identity.fingerprint]);
      match(e.message, new RegExp(formatFingerprint(identity.fingerprint)));
      return true;
    });
  });
  await t.step(
    "no CA, pin or known hosts: the system roots refuse a self-signed certificate",
    async () => {
      await rejects(echo(s.address, { tls: true }), (e: unknown) => {
        ok(e instanceof TlsVerifyError, String(e));
        deepEqual(e.code, "untrusted");
        return true;
      });
    },
  );
  await t.step("known hosts: first use records with a notice, then must match", async () => {
    const dir = await Deno.makeTempDir();
    const knownHosts = `${dir}/sockit/known_hosts`;
    const noticed: string[] = [];
    const tls = { knownHosts, onNewHost: (a: string, fp: string) => noticed.push(`${a} ${fp}`) };
    deepEqual(await echo(s.address, { tls }), "over tls");
    deepEqual(noticed, [`${s.address} ${identity.fingerprint}`]);
    deepEqual(await echo(s.address, { tls }), "over tls");
    deepEqual(noticed.length, 1);
    match(await Deno.readTextFile(knownHosts), new RegExp(formatFingerprint(identity.fingerprint)));
    deepEqual((await Deno.stat(knownHosts)).mode! & 0o777, 0o600);
    // The same address now presents another certificate.
    const other = await createSelfSigned();
    await using moved = await tlsServer(other);
    const entry = `${moved.address} sha256:${identity.fingerprint}\n`;
    await Deno.writeTextFile(knownHosts, entry, { append: true });
    await rejects(echo(moved.address, { tls }), (e: unknown) => {
      ok(e instanceof TlsVerifyError);
      deepEqual(e.code, "host_key_changed");
      deepEqual([e.expected, e.actual], [identity.fingerprint, other.fingerprint]);
      return true;
    });
    await Deno.remove(dir, { recursive: true });
  });
});

Deno.test("certificate failures: unknown CA, wrong name, expired", async (t) => {
  await t.step("a CA that did not sign it", async () => {
    await using s = await tlsServer(identity);
    const stranger = await createSelfSigned();
    await rejects(echo(s.address, { tls: { caCerts: [stranger.cert] } }), (e: unknown) => {
      ok(e instanceof TlsVerifyError, String(e));
      deepEqual(e.code, "untrusted");
      return true;
    });
  });
  await t.step("valid for localhost only, reached as 127.0.0.1", async () => {
    const named = await createSelfSigned({ names: ["localhost"] });
    await using s = await tlsServer(named);
    await rejects(echo(s.address, { tls: { caCerts: [named.cert] } }), (e: unknown) => {
      ok(e instanceof TlsVerifyError, String(e));
      deepEqual(e.code, "name_mismatch");
      return true;
    });
    // The name it holds works.
    const port = s.address.split(":")[1];
    const byName = { caCerts: [named.cert], serverName: "localhost" };
    deepEqual(await echo(`127.0.0.1:${port}`, { tls: byName }), "over tls");
  });
  await t.step("expired yesterday", async () => {
    const day = 86_400_000;
    const old = await createSelfSigned({
      notBefore: new Date(Date.now() - 30 * day),
      notAfter: new Date(Date.now() - day),
    });
    await using s = await tlsServer(old);
    await rejects(echo(s.address, { tls: { caCerts: [old.cert] } }), (e: unknown) => {
      ok(e instanceof TlsVerifyError, String(e));
      deepEqual(e.code, "expired");
      return true;
    });
    // A pin does not excuse an expired certificate.
    await rejects(echo(s.address, { tls: { pin: old.fingerprint } }), TlsVerifyError);
  });
});

Deno.test("plain and TLS mixed up fail fast, and the server keeps serving", async (t) => {
  await using tls = await tlsServer(identity, { handshakeTimeout: 2000 });
  await using plain = await startServer({ handshakeTimeout: 2000 });
  await t.step("a plain client on the TLS port", async () => {
    const started = performance.now();
    await rejects(echo(tls.address, {}), (e: unknown) => {
      ok(e instanceof ConnectError, String(e));
      match(e.message, /speaks TLS on this port: connect with TLS \(the tls option\)/);
      return true;
    });
    ok(performance.now() - started < 1500, "fails before the handshake deadline");
    await waitFor(
      () => tls.events.some((e) => e.type === "tls-failed"),
      5000,
      "the TLS server to report the failed handshake",
    );
  });
  await t.step("a TLS client on the plain port", async () => {
    const started = performance.now();
    await rejects(echo(plain.address, { tls: { caCerts: [identity.cert] } }), (e: unknown) => {
      ok(e instanceof TlsVerifyError, String(e));
      deepEqual(e.code, "not_tls");
      return true;
    });
    ok(performance.now() - started < 1500, "fails before the handshake deadline");
    await waitFor(
      () => plain.events.some((e) => e.type === "closed" && e.reason === "bad_handshake"),
      5000,
      "the plain server to close the connection as bad_handshake",
    );
  });
  await t.step("both servers still serve", async () => {
    deepEqual(await echo(tls.address, { tls: { caCerts: [identity.cert] } }), "over tls");
    deepEqual(await echo(plain.address, {}), "over tls");
  });
});

Deno.test("the TLS handshake counts against the handshake deadline", async () => {
  await using s = await tlsServer(identity, {
    handshakeTimeout: 300,
    maxUnauthenticated: 2,
    sourceGuard: false,
  });
  // Two connections that never send a ClientHello fill the handshake slots.
  using first = await rawConnect(s.address);
  using second = await rawConnect(s.address);
  await waitFor(
    () => s.events.filter((e) => e.type === "connected").length === 2,
    5000,
    "both silent connections to be accepted",
  );
  const started = performance.now();
  await waitFor(
    () => s.events.filter((e) => e.type === "tls-failed").length === 2,
    3000,
    "both silent connections to fail their TLS handshake",
  );
  const waited = performance.now() - started;
  ok(waited < 2000, `dropped after ${Math.round(waited)} ms`);
  const failed = s.events.find((e) => e.type === "tls-failed");
  match(failed?.type === "tls-failed" ? failed.message : "", /no TLS handshake within 300 ms/);
  ok(s.events.some((e) => e.type === "closed" && e.reason === "tls_failed"));
  // Their slots are free again: a real client gets in.
  deepEqual(await echo(s.address, { tls: { caCerts: [identity.cert] } }), "over tls");
  void first;
  void second;
});

/** Whether `openssl` runs here. */
async function opensslInstalled(): Promise<boolean> {
  try {
    const { success } = await new Deno.Command("openssl", {
      args: ["version"],
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

Deno.test({
  name: "openssl s_client completes a TLS 1.3 handshake",
  ignore: !await opensslInstalled(), // openssl is not installed here
}, async (t) => {
  await using s = await tlsServer(identity);
  await t.step("the negotiated protocol is TLSv1.3", async () => {
    const [host, port] = s.address.split(":");
    const out = await new Deno.Command("openssl", {
      args: ["s_client", "-connect", `${host}:${port}`, "-tls1_3", "-brief"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = decoder.decode(out.stdout) + decoder.decode(out.stderr);
    ok(out.success, text);
    match(text, /Protocol version: TLSv1\.3/);
  });
});

Deno.test("a key file other users can read is refused, as ssh refuses one", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/cert.pem`, identity.cert);
    await Deno.writeTextFile(`${dir}/key.pem`, identity.key);
    await Deno.chmod(`${dir}/key.pem`, 0o644);
    await rejects(loadTlsIdentity(`${dir}/cert.pem`, `${dir}/key.pem`), /chmod 600/);
    await Deno.chmod(`${dir}/key.pem`, 0o600);
    deepEqual(
      (await loadTlsIdentity(`${dir}/cert.pem`, `${dir}/key.pem`)).fingerprint,
      identity.fingerprint,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
