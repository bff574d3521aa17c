//! Fuzzes the binlog server's packet handling (`parapply mirror --serve`,
//! `parapply serve`): one client connection served over in-memory bytes,
//! against a small synthetic mirror (three files, GTIDs, a rotation).
//!
//! Input: a mode byte, then the client's bytes.
//! * mode bit 0 clear: the bytes are everything the client sends after
//!   the greeting (a garbage login, packets out of order, huge lengths…).
//! * mode bit 0 set: the target logs in correctly (it knows the scramble and
//!   the password), then cuts the rest into commands — a length byte, then
//!   that many bytes — and frames each as a packet with sequence number 0:
//!   queries (`SET`, `SELECT`, `SHOW`, anything), `COM_REGISTER_SLAVE`,
//!   `COM_BINLOG_DUMP` by file:pos and by GTID, unknown commands.
//! * mode bit 1 set (with bit 0): the commands are prefixed by the session
//!   settings a replica sends, so dumps get past the capability check.
//!
//! The server's stop flag is set: a dump that reaches the end of the mirror
//! returns instead of waiting for growth. The server must not panic, and
//! must not allocate by an unchecked length (run with
//! `-rss_limit_mb=1024 -malloc_limit_mb=256`).

#![no_main]

use std::io::{self, Cursor, Read, Write};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use parapply::binlog::synth::{self, SynthOptions};
use parapply::mirror::serve::protocol::{caps, client_token};
use parapply::mirror::serve::{ClientStream, Published, ServeOptions, Service};
use parapply::wire::Secret;

const PASSWORD: &str = "fuzz-password";
const SCRAMBLE: [u8; 20] = *b"0123456789abcdefghij";

struct Fixture {
    _dir: tempfile::TempDir,
    service: Service,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary directory");
        let opts = SynthOptions {
            until: synth::Until::Transactions(60),
            max_file_size: 4096,
            ..SynthOptions::default()
        };
        let out = synth::generate(dir.path(), &opts).expect("synthetic binlog");
        let published = Arc::new(Published::new());
        let files: Vec<String> = out
            .files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        let last_len = std::fs::metadata(out.files.last().unwrap()).unwrap().len();
        published.set(files, last_len);
        let mut o = ServeOptions::new(dir.path(), "127.0.0.1:0", "repl", Secret::new(PASSWORD));
        o.stop = Arc::new(AtomicBool::new(true));
        let service = Service::new(&o, published, 3306).expect("service");
        Fixture { _dir: dir, service }
    })
}

/// The client's side: reads from the input, discards what the server says.
struct Duplex {
    input: Cursor<Vec<u8>>,
}

impl Read for Duplex {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Duplex {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ClientStream for Duplex {}

fn packet(out: &mut Vec<u8>, seq: u8, payload: &[u8]) {
    let n = payload.len();
    out.extend_from_slice(&[n as u8, (n >> 8) as u8, (n >> 16) as u8, seq]);
    out.extend_from_slice(payload);
}

fn login() -> Vec<u8> {
    let mut p = Vec::new();
    let c = caps::PROTOCOL_41 | caps::SECURE_CONNECTION | caps::PLUGIN_AUTH;
    p.extend_from_slice(&c.to_le_bytes());
    p.extend_from_slice(&(1u32 << 24).to_le_bytes());
    p.push(45);
    p.extend_from_slice(&[0u8; 23]);
    p.extend_from_slice(b"repl\0");
    let token = client_token(PASSWORD, &SCRAMBLE);
    p.push(token.len() as u8);
    p.extend_from_slice(&token);
    p.extend_from_slice(b"mysql_native_password\0");
    let mut out = Vec::new();
    packet(&mut out, 1, &p);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let input = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        let mut input = login();
        if mode & 2 != 0 {
            let mut q = vec![0x03];
            q.extend_from_slice(
                b"SET @master_binlog_checksum = @@global.binlog_checksum, \
                  @mariadb_slave_capability = 4, @master_heartbeat_period = 1000000",
            );
            packet(&mut input, 0, &q);
        }
        let mut r = rest;
        while let Some((&n, tail)) = r.split_first() {
            let n = usize::from(n).min(tail.len());
            packet(&mut input, 0, &tail[..n]);
            r = &tail[n..];
        }
        input
    };
    f.service.handle_with_scramble(
        Duplex {
            input: Cursor::new(input),
        },
        SCRAMBLE,
    );
});
