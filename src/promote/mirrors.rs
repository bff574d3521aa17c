//! The mirrors promote reads: their files and lengths, the check that they
//! are prefixes of one stream (byte comparison over their common length,
//! naming the first differing file:pos and the event that holds it). What
//! the longest one holds is read by the catchup module (`catchup::scan`).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::binlog::{ReadError, Source};
use crate::position::BinlogPos;

/// One mirror directory as it stands: its files (from its index) and their
/// lengths.
#[derive(Debug, Clone)]
pub struct MirrorFiles {
    /// The directory.
    pub dir: PathBuf,
    /// `(file name, length)` in index order.
    pub files: Vec<(String, u64)>,
}

impl MirrorFiles {
    /// Reads the index of `dir` and the length of each file.
    pub fn read(dir: &Path) -> Result<MirrorFiles, ReadError> {
        let files = match Source::dir(dir)? {
            Source::Index(index) => crate::binlog::reader::read_index(&index)?,
            Source::Files(v) => v,
        };
        let mut out = Vec::new();
        for f in files {
            let len = std::fs::metadata(&f)
                .map_err(|error| ReadError::Io {
                    path: f.clone(),
                    error,
                })?
                .len();
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push((name, len));
        }
        Ok(MirrorFiles {
            dir: dir.to_path_buf(),
            files: out,
        })
    }

    /// Total bytes.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|(_, l)| l).sum()
    }

    /// Where it ends: the last file and its length.
    pub fn end(&self) -> Option<BinlogPos> {
        self.files
            .last()
            .map(|(n, l)| BinlogPos::new(n.clone(), *l))
    }

    /// Its source for the reader.
    pub fn source(&self) -> Result<Source, ReadError> {
        Source::dir(&self.dir)
    }
}

/// Where two mirrors first differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// The first differing byte (or the first file that differs, at 0).
    pub at: BinlogPos,
    /// The start of the event that holds it in the longer mirror, when
    /// found.
    pub event: Option<BinlogPos>,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.at)?;
        if let Some(e) = &self.event {
            if e != &self.at {
                write!(f, " (in the event at {e})")?;
            }
        }
        Ok(())
    }
}

/// Whether the shorter of `a` and `b` is a prefix of the longer: `None`,
/// or where they first differ. `long` is the longer of the two by bytes.
pub fn first_difference(
    a: &MirrorFiles,
    b: &MirrorFiles,
) -> Result<Option<Divergence>, std::io::Error> {
    let (short, long) = if a.bytes() <= b.bytes() {
        (a, b)
    } else {
        (b, a)
    };
    for (i, (name, len)) in short.files.iter().enumerate() {
        let Some((lname, llen)) = long.files.get(i) else {
            // More files but fewer bytes: its last files differ.
            return Ok(Some(Divergence {
                at: BinlogPos::new(name.clone(), 0),
                event: None,
            }));
        };
        if name != lname {
            return Ok(Some(Divergence {
                at: BinlogPos::new(name.clone(), 0),
                event: None,
            }));
        }
        let last = i + 1 == short.files.len();
        let common = (*len).min(*llen);
        if let Some(off) =
            first_differing_byte(&short.dir.join(name), &long.dir.join(name), common)?
        {
            let event = event_start(&long.dir.join(name), off).ok().flatten();
            return Ok(Some(Divergence {
                at: BinlogPos::new(name.clone(), off),
                event: event.map(|p| BinlogPos::new(name.clone(), p)),
            }));
        }
        // A file the shorter mirror finished (rotated away from) must be
        // whole in the longer one too.
        if !last && len != llen {
            return Ok(Some(Divergence {
                at: BinlogPos::new(name.clone(), common),
                event: None,
            }));
        }
    }
    Ok(None)
}

/// The first offset below `len` at which files `a` and `b` differ.
fn first_differing_byte(a: &Path, b: &Path, len: u64) -> Result<Option<u64>, std::io::Error> {
    let mut fa = File::open(a)?;
    let mut fb = File::open(b)?;
    let mut ba = vec![0u8; 1 << 16];
    let mut bb = vec![0u8; 1 << 16];
    let mut off = 0u64;
    while off < len {
        let n = ((len - off) as usize).min(ba.len());
        fa.read_exact(&mut ba[..n])?;
        fb.read_exact(&mut bb[..n])?;
        if let Some(i) = ba[..n].iter().zip(&bb[..n]).position(|(x, y)| x != y) {
            return Ok(Some(off + i as u64));
        }
        off += n as u64;
    }
    Ok(None)
}

/// The start of the event of binlog file `path` that holds byte `off`
/// (walking the event headers from offset 4).
fn event_start(path: &Path, off: u64) -> Result<Option<u64>, std::io::Error> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let mut pos = 4u64;
    let mut header = [0u8; 19];
    while pos < len {
        f.seek(SeekFrom::Start(pos))?;
        if f.read_exact(&mut header).is_err() {
            return Ok(None);
        }
        let size = u64::from(u32::from_le_bytes([
            header[9], header[10], header[11], header[12],
        ]));
        if size < 19 {
            return Ok(None);
        }
        if off < pos + size {
            return Ok(Some(pos));
        }
        pos += size;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mirror(dir: &Path, files: &[(&str, &[u8])]) -> MirrorFiles {
        std::fs::create_dir_all(dir).unwrap();
        let mut index = String::new();
        for (n, bytes) in files {
            std::fs::write(dir.join(n), bytes).unwrap();
            index.push_str(&format!("./{n}\n"));
        }
        std::fs::write(dir.join("m.index"), index).unwrap();
        MirrorFiles::read(dir).unwrap()
    }

    /// A file of events of `sizes` bytes each after the 4-byte magic, each
    /// filled with `fill`.
    fn events(sizes: &[u32], fill: u8) -> Vec<u8> {
        let mut v = b"\xfebin".to_vec();
        for s in sizes {
            let mut e = vec![fill; *s as usize];
            e[9..13].copy_from_slice(&s.to_le_bytes());
            v.extend(e);
        }
        v
    }

    #[test]
    fn prefixes_pass_and_a_fork_is_named_with_its_event() {
        let d = tempfile::tempdir().unwrap();
        let full = events(&[30, 40, 50], 7);
        let a = mirror(
            &d.path().join("a"),
            &[("b.000001", &full[..]), ("b.000002", &full[..34])],
        );
        let b = mirror(&d.path().join("b"), &[("b.000001", &full[..])]);
        assert_eq!(first_difference(&a, &b).unwrap(), None);
        assert_eq!(a.end(), Some(BinlogPos::new("b.000002", 34)));
        let mut forked = full.clone();
        forked[80] = 9;
        let c = mirror(&d.path().join("c"), &[("b.000001", &forked[..])]);
        let div = first_difference(&a, &c).unwrap().unwrap();
        assert_eq!(div.at, BinlogPos::new("b.000001", 80));
        assert_eq!(div.event, Some(BinlogPos::new("b.000001", 74)));
        assert_eq!(div.to_string(), "b.000001:80 (in the event at b.000001:74)");
        // Rotated at another place.
        let e = mirror(
            &d.path().join("e"),
            &[("b.000001", &full[..74]), ("b.000002", &full[..4])],
        );
        assert!(first_difference(&e, &a).unwrap().is_some());
    }
}
