//! TLS on every connection parapply opens or serves, against a real
//! `mariadbd` started with a CA made here (rcgen): each `--ssl-mode`
//! connects or refuses as docs/operations.md says, for a plain user, a
//! `REQUIRE SSL` user, a `REQUIRE X509` user and under
//! `require_secure_transport=ON`; a wrong CA and a wrong host name are
//! clear errors; the command line's `--ssl-*` options reach the
//! connections; the mirror copies a primary that requires TLS byte for
//! byte; `apply` (workers, control connection, liveness probes) applies to
//! a target that requires TLS and is refused by it without; `mariadb-binlog` and a stock replica read `parapply serve` over
//! TLS, and a server that requires TLS refuses them without.
//!
//! Run: `cargo test --test tls` (needs mariadb-server and mariadb-binlog).

mod common;

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::HANG_GUARD;
use parapply::apply::engine::{self, ApplyOptions};
use parapply::binlog::Source;
use parapply::mirror::serve::{ServeError, ServeOptions, Server as BinlogServer};
use parapply::mirror::{self, MirrorOptions};
use parapply::sandbox::{Server, ServerOptions};
use parapply::wire::tls::server_config;
use parapply::wire::{ClientTls, Conn, ConnectOptions, Secret, SslMode, TlsOptions, WireError};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

const PASSWORD: &str = "tls-secret-7";

/// The PEM files of a test PKI: a CA, a server certificate for
/// `localhost` only, a client certificate, and a second CA that signed
/// nothing of these.
struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    other_ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    (p.self_signed(&key).unwrap(), key)
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let write = |name: &str, pem: String| {
        let p = d.join(name);
        fs::write(&p, pem).unwrap();
        p
    };
    let (ca_cert, ca_key) = ca("parapply test CA");
    let (other, _) = ca("another CA");
    let leaf = |names: Vec<String>, cn: &str| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        (p.signed_by(&key, &ca_cert, &ca_key).unwrap(), key)
    };
    let (server, server_key) = leaf(vec!["localhost".into()], "localhost");
    let (client, client_key) = leaf(vec![], "parapply client");
    // mariadbd reads its key files as the user it runs as.
    Pki {
        ca: write("ca.pem", ca_cert.pem()),
        other_ca: write("other-ca.pem", other.pem()),
        server_cert: write("server-cert.pem", server.pem()),
        server_key: write("server-key.pem", server_key.serialize_pem()),
        client_cert: write("client-cert.pem", client.pem()),
        client_key: write("client-key.pem", client_key.serialize_pem()),
        _dir: dir,
    }
}

/// A server with TLS and three users: `plain`, `secure` (REQUIRE SSL),
/// `x509` (REQUIRE X509), all with [`PASSWORD`].
fn tls_server(pki: &Pki, opts: ServerOptions) -> Server {
    let s = Server::start(
        opts.arg(format!("--ssl-ca={}", pki.ca.display()))
            .arg(format!("--ssl-cert={}", pki.server_cert.display()))
            .arg(format!("--ssl-key={}", pki.server_key.display())),
    )
    .expect("start mariadbd with TLS");
    let have: Option<(String, String)> = s
        .query_first("SHOW GLOBAL VARIABLES LIKE 'have_ssl'")
        .unwrap();
    assert_eq!(
        have.map(|h| h.1).as_deref(),
        Some("YES"),
        "mariadbd did not take the test certificates:\n{}",
        s.error_log_tail(20)
    );
    for (user, req) in [("plain", "NONE"), ("secure", "SSL"), ("x509", "X509")] {
        s.exec(&format!(
            "CREATE USER '{user}'@'%' IDENTIFIED BY '{PASSWORD}' REQUIRE {req}; \
             GRANT ALL ON *.* TO '{user}'@'%'"
        ))
        .unwrap();
    }
    s
}

fn client_tls(mode: SslMode, ca: Option<&Path>, cert: Option<(&Path, &Path)>) -> ClientTls {
    ClientTls::new(&TlsOptions {
        mode: Some(mode),
        ca: ca.map(Path::to_path_buf),
        cert: cert.map(|c| c.0.to_path_buf()),
        key: cert.map(|c| c.1.to_path_buf()),
    })
    .unwrap()
}

fn options(host: &str, port: u16, user: &str, tls: ClientTls) -> ConnectOptions {
    let mut o = ConnectOptions::new(host, port, user);
    o.password = Some(Secret::new(PASSWORD));
    o.tls = tls;
    o
}

/// Connects and returns the session's cipher as the server sees it
/// (empty without TLS), checking the client agrees.
fn cipher(o: &ConnectOptions) -> Result<String, WireError> {
    let mut c = Conn::connect(o)?;
    let v = c
        .query_rows("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .unwrap();
    let cipher = v[0][1]
        .as_ref()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    assert_eq!(c.is_tls(), !cipher.is_empty(), "client and server disagree");
    Ok(cipher)
}

#[test]
fn each_ssl_mode_connects_or_refuses_as_documented() {
    let pki = pki();
    let s = tls_server(&pki, ServerOptions::new());
    let port = s.port();
    let ca = Some(pki.ca.as_path());
    let modes = [
        SslMode::Disabled,
        SslMode::Preferred,
        SslMode::Required,
        SslMode::VerifyCa,
        SslMode::VerifyIdentity,
    ];
    for mode in modes {
        let tls = client_tls(
            mode,
            if mode == SslMode::Disabled { None } else { ca },
            None,
        );
        // By name: the certificate names `localhost`.
        let plain = cipher(&options("localhost", port, "plain", tls.clone()));
        let secure = cipher(&options("localhost", port, "secure", tls.clone()));
        println!("{mode}: plain user {plain:?}, REQUIRE SSL user {secure:?}");
        if mode == SslMode::Disabled {
            assert_eq!(plain.unwrap(), "", "disabled: no TLS");
            let e = secure.unwrap_err();
            assert_eq!(e.code(), Some(1045), "REQUIRE SSL without TLS: {e}");
        } else {
            assert!(!plain.unwrap().is_empty(), "{mode}: TLS");
            assert!(!secure.unwrap().is_empty(), "{mode}: REQUIRE SSL user");
        }
    }

    // A wrong CA: refused by the verify modes, with the reason.
    for mode in [SslMode::VerifyCa, SslMode::VerifyIdentity] {
        let tls = client_tls(mode, Some(&pki.other_ca), None);
        let e = cipher(&options("localhost", port, "plain", tls)).unwrap_err();
        let text = e.to_string();
        println!("{mode} with a wrong CA: {text}");
        assert!(matches!(e, WireError::Tls { .. }), "{e:?}");
        assert!(
            text.contains("not signed by a CA of --ssl-ca") && text.contains(&mode.to_string()),
            "{text}"
        );
        assert!(!e.is_connection_lost(), "an operator's error, not a retry");
    }
    // ... and accepted by the modes that do not verify.
    let tls = client_tls(SslMode::Required, None, None);
    assert!(!cipher(&options("localhost", port, "plain", tls))
        .unwrap()
        .is_empty());

    // The host name: the certificate names localhost, not 127.0.0.1.
    let tls = client_tls(SslMode::VerifyIdentity, ca, None);
    let e = cipher(&options("127.0.0.1", port, "plain", tls)).unwrap_err();
    let text = e.to_string();
    println!("verify-identity to 127.0.0.1: {text}");
    assert!(text.contains("does not name the host"), "{text}");
    let tls = client_tls(SslMode::VerifyCa, ca, None);
    assert!(!cipher(&options("127.0.0.1", port, "plain", tls))
        .unwrap()
        .is_empty());

    // REQUIRE X509: a client certificate signed by the server's CA.
    let with_cert = client_tls(
        SslMode::VerifyIdentity,
        ca,
        Some((&pki.client_cert, &pki.client_key)),
    );
    assert!(!cipher(&options("localhost", port, "x509", with_cert))
        .unwrap()
        .is_empty());
    let without = client_tls(SslMode::VerifyIdentity, ca, None);
    let e = cipher(&options("localhost", port, "x509", without)).unwrap_err();
    assert_eq!(
        e.code(),
        Some(1045),
        "REQUIRE X509 without a certificate: {e}"
    );

    // require_secure_transport=ON: only TLS logs in (the sandbox's own
    // connections end here).
    s.exec("SET GLOBAL require_secure_transport = ON").unwrap();
    let e = cipher(&options("localhost", port, "plain", ClientTls::disabled())).unwrap_err();
    println!("require_secure_transport, disabled: {e}");
    assert!(matches!(e, WireError::Auth { code: Some(_), .. }), "{e:?}");
    for mode in [
        SslMode::Preferred,
        SslMode::Required,
        SslMode::VerifyIdentity,
    ] {
        let tls = client_tls(
            mode,
            if mode == SslMode::VerifyIdentity {
                ca
            } else {
                None
            },
            None,
        );
        assert!(!cipher(&options("localhost", port, "plain", tls))
            .unwrap()
            .is_empty());
    }
}

#[test]
fn a_server_without_tls_is_plain_for_preferred_and_refused_when_required() {
    let s = Server::start(ServerOptions::new()).expect("start mariadbd");
    s.exec(&format!(
        "CREATE USER 'plain'@'%' IDENTIFIED BY '{PASSWORD}'"
    ))
    .unwrap();
    let tls = client_tls(SslMode::Preferred, None, None);
    assert_eq!(
        cipher(&options("127.0.0.1", s.port(), "plain", tls)).unwrap(),
        ""
    );
    let tls = client_tls(SslMode::Required, None, None);
    let e = cipher(&options("127.0.0.1", s.port(), "plain", tls)).unwrap_err();
    let text = e.to_string();
    println!("required, no TLS on the server: {text}");
    assert!(
        matches!(e, WireError::Tls { .. }) && text.contains("does not offer"),
        "{text}"
    );
}

#[test]
fn the_mirror_reads_a_primary_that_requires_tls() {
    let pki = pki();
    let p = tls_server(
        &pki,
        ServerOptions::new().server_id(1).log_bin("mariadb-bin"),
    );
    p.exec(
        "CREATE DATABASE w1; CREATE TABLE w1.t (id INT PRIMARY KEY, v LONGTEXT); \
         INSERT INTO w1.t VALUES (1, REPEAT('a', 100000)), (2, 'b'); FLUSH BINARY LOGS; \
         INSERT INTO w1.t VALUES (3, REPEAT('c', 300000))",
    )
    .unwrap();
    p.wait_binlog_settled(HANG_GUARD).unwrap();
    // From here only TLS logs in (the sandbox's own connections too).
    p.exec("SET GLOBAL require_secure_transport = ON").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tls = client_tls(SslMode::VerifyIdentity, Some(&pki.ca), None);
    let mut mo = MirrorOptions::new(
        options("localhost", p.port(), "secure", tls),
        dir.path(),
        77,
    );
    mo.heartbeat = Duration::from_millis(200);
    let stop = Arc::new(AtomicBool::new(false));
    mo.stop = Some(stop.clone());
    let mirror = std::thread::spawn(move || mirror::run(&mo));
    let files = p.binlog_files().unwrap();
    let same = || {
        files
            .iter()
            .all(|f| fs::read(dir.path().join(f.file_name().unwrap())).ok() == fs::read(f).ok())
    };
    let deadline = Instant::now() + HANG_GUARD;
    while !same() {
        assert!(
            Instant::now() < deadline && !mirror.is_finished(),
            "the mirror did not copy the primary's files over TLS"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::SeqCst);
    mirror.join().unwrap().unwrap();
    println!("mirrored {} files over TLS, byte-identical", files.len());
}

/// A primary without TLS, binlog on.
fn primary() -> Server {
    Server::start(ServerOptions::new().server_id(1).log_bin("mariadb-bin"))
        .expect("start the primary")
}

#[test]
fn apply_workers_and_control_connection_use_tls_to_a_target_that_requires_it() {
    let pki = pki();
    let p = primary();
    p.exec(
        "CREATE DATABASE w1; CREATE DATABASE w2; \
         CREATE TABLE w1.t (id INT PRIMARY KEY); CREATE TABLE w2.t (id INT PRIMARY KEY); \
         INSERT INTO w1.t VALUES (1), (2); INSERT INTO w2.t VALUES (3)",
    )
    .unwrap();
    p.wait_binlog_settled(HANG_GUARD).unwrap();
    let t = tls_server(
        &pki,
        ServerOptions::new()
            .server_id(2)
            .log_bin("target-bin")
            .log_slave_updates(true),
    );
    t.exec("SET GLOBAL require_secure_transport = ON").unwrap();
    let tls = client_tls(SslMode::VerifyIdentity, Some(&pki.ca), None);
    let mut o = ApplyOptions::new(
        Source::dir(p.binlog_dir()).unwrap(),
        options("localhost", t.port(), "secure", tls),
    );
    o.workers = 2;
    let r = engine::run(o).unwrap_or_else(|f| panic!("{}", f.error));
    println!("applied {} groups over TLS", r.applied);
    assert!(r.applied >= 6, "{}", r.applied);
    // Read back over TLS (the sandbox's own client has none).
    let tls = client_tls(SslMode::Required, None, None);
    let mut c = Conn::connect(&options("localhost", t.port(), "secure", tls)).unwrap();
    let rows = c
        .query_value("SELECT (SELECT COUNT(*) FROM w1.t) + (SELECT COUNT(*) FROM w2.t)")
        .unwrap();
    assert_eq!(rows.as_deref(), Some("3"));
    // Plain, the same target refuses the applier.
    let o = ApplyOptions::new(
        Source::dir(p.binlog_dir()).unwrap(),
        options("localhost", t.port(), "secure", ClientTls::disabled()),
    );
    let f = engine::run(o).expect_err("a plain applier is refused");
    println!("plain applier: {}", f.error);
    assert!(f.error.to_string().contains("1045"), "{}", f.error);
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_parapply")
}

/// `parapply status` with `args`: its exit status and stderr.
fn status(s: &Server, host: &str, user: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(bin())
        .arg("status")
        .arg("--target")
        .arg(format!("mysql://{user}@{host}:{}/", s.port()))
        .args(args)
        .env("PARAPPLY_TARGET_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_command_lines_ssl_options_reach_the_connections() {
    let pki = pki();
    let s = tls_server(&pki, ServerOptions::new());
    let ca = format!("--ssl-ca={}", pki.ca.display());
    let other = format!("--ssl-ca={}", pki.other_ca.display());
    // `status` on a target that has never been applied to says so; what
    // matters here is whether it logged in.
    let logged_in = |ok: bool, err: &str| ok || !err.contains("cannot");
    let (ok, err) = status(&s, "localhost", "secure", &["--ssl-mode", "disabled"]);
    assert!(!ok && err.contains("error 1045"), "{err}");
    let (ok, err) = status(&s, "localhost", "secure", &[&ca]);
    assert!(logged_in(ok, &err), "{err}");
    let (ok, err) = status(&s, "localhost", "secure", &[&other]);
    assert!(
        !ok && err.contains("not signed by a CA of --ssl-ca"),
        "{err}"
    );
    let (ok, err) = status(
        &s,
        "127.0.0.1",
        "secure",
        &[&ca, "--ssl-mode=verify-identity"],
    );
    assert!(!ok && err.contains("does not name the host"), "{err}");
    let (ok, err) = status(&s, "localhost", "secure", &["--ssl-mode", "verify-ca"]);
    println!("verify-ca, no --ssl-ca: {err}");
    assert!(!ok && err.contains("give its CA with --ssl-ca"), "{err}");
    let (ok, err) = status(
        &s,
        "localhost",
        "x509",
        &[&ca, "--ssl-cert", "/nonexistent"],
    );
    assert!(!ok && err.contains("--ssl-key"), "{err}");
}

/// A binlog server over the primary's own binlog directory, with TLS.
struct Served {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), ServeError>>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_tls(dir: &Path, pki: &Pki, require: bool) -> Served {
    let mut so = ServeOptions::new(dir, "127.0.0.1:0", "repl", Secret::new(PASSWORD));
    so.tls = Some(server_config(&pki.server_cert, &pki.server_key).unwrap());
    so.require_tls = require;
    let stop = so.stop.clone();
    let server = BinlogServer::bind(so, None).unwrap();
    let addr = server.local_addr().unwrap();
    Served {
        addr,
        stop,
        thread: Some(std::thread::spawn(move || server.run())),
    }
}

fn mariadb_binlog(port: u16, out: &Path, ssl: &[String]) -> std::process::Output {
    fs::create_dir_all(out).unwrap();
    Command::new("mariadb-binlog")
        .arg("--read-from-remote-server")
        .arg("--raw")
        // By the name the certificate gives, over TCP.
        .arg("--host=localhost")
        .arg("--protocol=TCP")
        .arg(format!("--port={port}"))
        .arg("--user=repl")
        .args(ssl)
        .arg(format!("--result-file={}/", out.display()))
        .arg("mariadb-bin.000001")
        .env("MYSQL_PWD", PASSWORD)
        .stdin(Stdio::null())
        .output()
        .expect("mariadb-binlog is needed for this test")
}

#[test]
fn mariadb_binlog_and_a_stock_replica_read_the_binlog_server_over_tls() {
    let pki = pki();
    let p = primary();
    p.exec(
        "CREATE DATABASE w1; CREATE TABLE w1.t (id INT PRIMARY KEY, v VARCHAR(20)); \
         INSERT INTO w1.t VALUES (1, 'a'), (2, 'b'); FLUSH BINARY LOGS",
    )
    .unwrap();
    p.wait_binlog_settled(HANG_GUARD).unwrap();
    let served = serve_tls(p.binlog_dir(), &pki, true);
    let port = served.addr.port();
    let work = tempfile::tempdir().unwrap();

    // mariadb-binlog over TLS, verifying the server: the primary's bytes.
    let ssl = vec![
        "--ssl".to_string(),
        format!("--ssl-ca={}", pki.ca.display()),
        "--ssl-verify-server-cert".to_string(),
    ];
    let out = mariadb_binlog(port, &work.path().join("tls"), &ssl);
    assert!(
        out.status.success(),
        "mariadb-binlog over TLS: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = fs::read(work.path().join("tls/mariadb-bin.000001")).unwrap();
    let want = fs::read(p.binlog_dir().join("mariadb-bin.000001")).unwrap();
    assert!(
        got == want,
        "mariadb-binlog's copy differs ({} vs {} bytes)",
        got.len(),
        want.len()
    );
    // Without TLS: refused, since the server requires it.
    let out = mariadb_binlog(
        port,
        &work.path().join("plain"),
        &["--skip-ssl".to_string()],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    println!("mariadb-binlog without TLS: {err}");
    assert!(
        !out.status.success() && err.contains("insecure transport"),
        "{err}"
    );

    // parapply's own client, each mode against the requiring server.
    let mut o = ConnectOptions::new("localhost", port, "repl");
    o.password = Some(Secret::new(PASSWORD));
    o.tls = client_tls(SslMode::VerifyIdentity, Some(&pki.ca), None);
    let c = Conn::connect(&o).unwrap();
    assert!(c.is_tls());
    o.tls = ClientTls::disabled();
    let e = Conn::connect(&o).unwrap_err();
    assert_eq!(e.code(), Some(3159), "{e}");

    // A stock replica, MASTER_SSL with the CA, replicates the data.
    let r = Server::start(ServerOptions::new().server_id(2)).expect("start a replica");
    r.exec(&format!(
        "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {port}, \
         MASTER_USER = 'repl', MASTER_PASSWORD = '{PASSWORD}', MASTER_CONNECT_RETRY = 1, \
         MASTER_SSL = 1, MASTER_SSL_CA = '{}', MASTER_SSL_VERIFY_SERVER_CERT = 0, \
         MASTER_LOG_FILE = 'mariadb-bin.000001', MASTER_LOG_POS = 4; START SLAVE",
        pki.ca.display()
    ))
    .unwrap();
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        let n: Option<i64> = r.query_first("SELECT COUNT(*) FROM w1.t").unwrap_or(None);
        if n == Some(2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica did not replicate over TLS:\n{}",
            r.error_log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
