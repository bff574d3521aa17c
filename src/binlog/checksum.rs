//! The CRC32 at the end of an event, checked in one place for the reader
//! and the mirror.
//!
//! When a binlog's Format_description event (FDE) announces CRC32, every
//! event ends with 4 bytes: the little-endian CRC32 of the header and body
//! before them. One exception: the FDE's checksum is computed with the
//! header flag `LOG_EVENT_BINLOG_IN_USE_F` clear, because the server sets
//! that flag in the active file's FDE and clears it in place when it closes
//! the file, without rewriting the checksum.
//!
//! Whether a file has checksums is the caller's knowledge (its FDE); this
//! module checks the bytes of one whole event, and never panics on a short
//! one.

use super::constants::{EventType, CHECKSUM_LEN, HEADER_LEN, LOG_EVENT_BINLOG_IN_USE_F};

/// Offset of the event type in the header.
const TYPE_OFFSET: usize = 4;
/// Offset of the 2-byte flags in the header.
const FLAGS_OFFSET: usize = 17;

/// Why an event's checksum does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumError {
    /// The event cannot hold a header and a checksum.
    #[error("event of {len} bytes cannot hold a {HEADER_LEN}-byte header and a checksum")]
    TooShort {
        /// The event's length.
        len: usize,
    },
    /// The stored CRC32 is not the one of the bytes.
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Mismatch {
        /// The CRC32 in the event's last 4 bytes.
        stored: u32,
        /// The CRC32 of the bytes before them.
        computed: u32,
    },
}

/// Computes the checksum of `event` without its last 4 bytes (header and
/// body), with the FDE rule of the module doc. `None` when `event` is
/// shorter than a header and a checksum.
pub fn compute(event: &[u8]) -> Option<u32> {
    let data_len = event.len().checked_sub(CHECKSUM_LEN)?;
    if data_len < HEADER_LEN {
        return None;
    }
    let data = &event[..data_len];
    if EventType(data[TYPE_OFFSET]) != EventType::FORMAT_DESCRIPTION {
        return Some(crc32fast::hash(data));
    }
    let (head, rest) = data.split_at(FLAGS_OFFSET);
    let (flags, body) = rest.split_at(2);
    let flags = u16::from_le_bytes([flags[0], flags[1]]) & !LOG_EVENT_BINLOG_IN_USE_F;
    let mut h = crc32fast::Hasher::new();
    h.update(head);
    h.update(&flags.to_le_bytes());
    h.update(body);
    Some(h.finalize())
}

/// The CRC32 stored in `event`'s last 4 bytes, if it has 4 bytes.
pub fn stored(event: &[u8]) -> Option<u32> {
    let tail = event.get(event.len().checked_sub(CHECKSUM_LEN)?..)?;
    Some(u32::from_le_bytes(tail.try_into().ok()?))
}

/// Verifies the CRC32 that ends `event` (a whole event: header, body,
/// checksum).
pub fn verify(event: &[u8]) -> Result<(), ChecksumError> {
    let too_short = ChecksumError::TooShort { len: event.len() };
    let computed = compute(event).ok_or(too_short)?;
    let stored = stored(event).ok_or(too_short)?;
    if stored == computed {
        Ok(())
    } else {
        Err(ChecksumError::Mismatch { stored, computed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binlog::synth;

    fn meta(flags: u16) -> synth::EventMeta {
        synth::EventMeta {
            timestamp: 1,
            server_id: 1,
            flags,
        }
    }

    /// An event with a valid checksum.
    fn event(t: EventType, flags: u16, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        synth::push_event(&mut out, 4, meta(flags), t, body);
        out
    }

    #[test]
    fn a_valid_event_verifies_and_a_flipped_bit_does_not() {
        let mut ev = event(EventType::QUERY, 0, b"some body bytes");
        assert_eq!(verify(&ev), Ok(()));
        ev[HEADER_LEN + 3] ^= 0x10;
        assert!(matches!(verify(&ev), Err(ChecksumError::Mismatch { .. })));
        // A flipped bit in the stored checksum.
        let mut ev = event(EventType::QUERY, 0, b"some body bytes");
        let last = ev.len() - 1;
        ev[last] ^= 1;
        assert!(matches!(verify(&ev), Err(ChecksumError::Mismatch { .. })));
    }

    #[test]
    fn the_fde_checksum_ignores_the_in_use_flag_only() {
        let fde = synth::format_description_event(meta(0), 0);
        assert_eq!(verify(&fde), Ok(()));
        let mut in_use = fde.clone();
        in_use[FLAGS_OFFSET] ^= LOG_EVENT_BINLOG_IN_USE_F as u8;
        assert_eq!(verify(&in_use), Ok(()), "the in-use flag is not covered");
        let mut other_flag = fde.clone();
        other_flag[FLAGS_OFFSET + 1] ^= 0x40;
        assert!(matches!(
            verify(&other_flag),
            Err(ChecksumError::Mismatch { .. })
        ));
        // For any other event type the flag is covered.
        let mut q = event(EventType::QUERY, 0, b"x");
        q[FLAGS_OFFSET] ^= LOG_EVENT_BINLOG_IN_USE_F as u8;
        assert!(matches!(verify(&q), Err(ChecksumError::Mismatch { .. })));
    }

    #[test]
    fn short_events_are_an_error_not_a_panic() {
        let fde = synth::format_description_event(meta(0), 0);
        for len in 0..HEADER_LEN + CHECKSUM_LEN {
            // Every prefix, as an FDE and as another type.
            assert_eq!(
                verify(&fde[..len]),
                Err(ChecksumError::TooShort { len }),
                "{len}"
            );
            let mut q = vec![0u8; len];
            if len > TYPE_OFFSET {
                q[TYPE_OFFSET] = EventType::QUERY.0;
            }
            assert_eq!(verify(&q), Err(ChecksumError::TooShort { len }));
        }
        // A header and a checksum, no body: verifiable.
        let ev = event(EventType::QUERY, 0, b"");
        assert_eq!(ev.len(), HEADER_LEN + CHECKSUM_LEN);
        assert_eq!(verify(&ev), Ok(()));
    }

    /// The FDE of a real MariaDB 10.11 binlog (a closed file: the in-use
    /// flag clear), and with the flag set as in a primary's active file.
    #[test]
    fn a_real_fde_verifies_with_and_without_the_in_use_flag() {
        let file = std::fs::read("../shared/binlogs/mariadb-10.11/mariadb-bin.000001").unwrap();
        let size = u32::from_le_bytes(file[4 + 9..4 + 13].try_into().unwrap()) as usize;
        let mut fde = file[4..4 + size].to_vec();
        assert_eq!(EventType(fde[TYPE_OFFSET]), EventType::FORMAT_DESCRIPTION);
        assert_eq!(verify(&fde), Ok(()));
        fde[FLAGS_OFFSET] ^= LOG_EVENT_BINLOG_IN_USE_F as u8;
        assert_eq!(verify(&fde), Ok(()));
        fde[HEADER_LEN] ^= 1;
        assert!(matches!(verify(&fde), Err(ChecksumError::Mismatch { .. })));
    }
}
