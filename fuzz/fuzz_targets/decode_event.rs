//! Fuzzes the event decoders: the first byte is the event type, the rest
//! the event body (header and checksum removed, as the reader hands it
//! over), decoded under the Format_description of a MariaDB 10.11 binlog
//! with CRC32 (`parapply::binlog::synth`).
//!
//! Whatever the bytes, decoding must return `Ok` or `Err`: no panic, no
//! allocation sized by an unchecked length field. A decoded event is also
//! serialized as `parapply inspect --json` prints it, and a Table_map's
//! column metadata is split, since callers do both.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use parapply::binlog::{synth, Event, EventType, FormatDescription};

fn fde() -> &'static FormatDescription {
    static FDE: OnceLock<FormatDescription> = OnceLock::new();
    FDE.get_or_init(synth::format_description)
}

fuzz_target!(|data: &[u8]| {
    let Some((&t, body)) = data.split_first() else {
        return;
    };
    if let Ok(ev) = Event::decode(EventType(t), body, fde()) {
        if let Event::TableMap(tm) = &ev {
            let _ = tm.column_metadata();
        }
        let _ = serde_json::to_vec(&ev);
    }
});
