//! Snapshot files: a group's data at one log position, as one checksummed file.
//!
//! A snapshot is written from a RocksDB point-in-time view of the group's key ranges
//! while new entries keep being applied, so building one never stalls the group. It is
//! a file, not a buffer, because a group's data can be far larger than memory: openraft
//! streams it to a lagging follower in bounded chunks (`snapshot_max_chunk_size`) and
//! the follower writes the chunks to a file of its own before installing it.
//!
//! Format: the magic `TSNAPv1\n`, then frames `kind u8 | length u32 BE | payload`: one
//! header frame (the group's applied state, encoded by the caller), one record frame per
//! key (`space code u8 | key length u32 BE | key | value`), and an end frame
//! (`record count u64 BE | CRC-32 u32 BE` of every byte before the end frame). A file is
//! verified whole before any of it is loaded, so a truncated or corrupted transfer is
//! refused without touching the replica's data.

use crate::error::{Error, Result};
use crate::storage::{Batch, KeyRange, Space, Store, StoreSnapshot};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

const MAGIC: &[u8; 8] = b"TSNAPv1\n";
const FRAME_HEADER: u8 = 1;
const FRAME_RECORD: u8 = 2;
const FRAME_END: u8 = 3;
/// Largest frame accepted when reading. Rows are far smaller; a bigger length means a
/// corrupt file, and must not make us allocate it.
const MAX_FRAME_BYTES: usize = 256 << 20;
/// Bytes of records loaded per write batch while installing: bounds memory.
const LOAD_BATCH_BYTES: usize = 4 << 20;
/// Buffer of the file reader and writer.
const IO_BUFFER_BYTES: usize = 1 << 20;

/// What writing a snapshot file produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileSummary {
    /// Key-value records in the file.
    pub records: u64,
    /// Size of the file in bytes.
    pub bytes: u64,
}

/// Writes the records of `ranges` in `view`, after `header`, to a new file at `path`
/// (written beside it, synced, then renamed into place, so `path` is always whole).
pub fn write(
    view: &StoreSnapshot<'_>,
    ranges: &[KeyRange],
    header: &[u8],
    path: &Path,
) -> Result<FileSummary> {
    let partial = path.with_extension("partial");
    let mut writer = FrameWriter::new(File::create(&partial)?);
    writer.raw(MAGIC)?;
    writer.frame(FRAME_HEADER, &[header])?;
    let mut records = 0u64;
    for range in ranges {
        view.for_each(range.space, &range.start, &range.end, |key, value| {
            let key_length = u32::try_from(key.len())
                .map_err(|_| Error::Internal("a key longer than 4 GiB".into()))?;
            writer.frame(
                FRAME_RECORD,
                &[&[range.space.code()], &key_length.to_be_bytes(), key, value],
            )?;
            records += 1;
            Ok(())
        })?;
    }
    let checksum = writer.hasher.clone().finalize();
    writer.frame(
        FRAME_END,
        &[&records.to_be_bytes(), &checksum.to_be_bytes()],
    )?;
    let bytes = writer.written;
    let file = writer
        .inner
        .into_inner()
        .map_err(|error| Error::Io(error.error().to_string()))?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&partial, path)?;
    sync_directory(path)?;
    Ok(FileSummary { records, bytes })
}

/// Checks a snapshot file whole (frames, record count, checksum) and returns its header.
pub fn verify(path: &Path) -> Result<Vec<u8>> {
    let mut header = None;
    read_frames(path, |frame| {
        if let Frame::Header(bytes) = frame {
            header = Some(bytes.to_vec());
        }
        Ok(())
    })?;
    header.ok_or_else(|| corrupt(path, "no header"))
}

/// Replaces the contents of `ranges` in `store` with the records of the snapshot file at
/// `path`, after verifying it; returns its header. The loading batches are not synced
/// and a crash can leave a mix of old and new data: the caller records that an
/// installation is under way before calling this, redoes it at start if so, and syncs
/// its own final batch.
pub fn load(store: &Store, ranges: &[KeyRange], path: &Path) -> Result<Vec<u8>> {
    let header = verify(path)?;
    let mut batch = Batch::default();
    for range in ranges {
        batch.delete_range(range.space, range.start.clone(), range.end.clone());
    }
    store.write_unsynced(batch)?;
    let mut batch = Batch::default();
    let mut batch_bytes = 0;
    read_frames(path, |frame| {
        if let Frame::Record { space, key, value } = frame {
            let inside = ranges.iter().any(|range| {
                range.space == space && key >= &range.start[..] && key < &range.end[..]
            });
            if !inside {
                return Err(corrupt(path, "a record outside the group's key ranges"));
            }
            batch_bytes += key.len() + value.len();
            batch.put(space, key.to_vec(), value.to_vec());
            if batch_bytes >= LOAD_BATCH_BYTES {
                store.write_unsynced(std::mem::take(&mut batch))?;
                batch_bytes = 0;
            }
        }
        Ok(())
    })?;
    store.write_unsynced(batch)?;
    Ok(header)
}

/// One frame of a snapshot file, as read.
enum Frame<'a> {
    Header(&'a [u8]),
    Record {
        space: Space,
        key: &'a [u8],
        value: &'a [u8],
    },
}

/// Reads every frame of the file at `path` in order, checking the structure, the record
/// count and the checksum; `visit` sees each header and record frame.
fn read_frames(path: &Path, mut visit: impl FnMut(Frame<'_>) -> Result<()>) -> Result<()> {
    let mut reader = BufReader::with_capacity(IO_BUFFER_BYTES, File::open(path)?);
    let mut hasher = crc32fast::Hasher::new();
    let mut magic = [0u8; 8];
    reader
        .read_exact(&mut magic)
        .map_err(|_| corrupt(path, "shorter than its magic number"))?;
    if &magic != MAGIC {
        return Err(corrupt(path, "not a Tessera snapshot file"));
    }
    hasher.update(&magic);
    let mut records = 0u64;
    let mut seen_header = false;
    let mut payload = Vec::new();
    loop {
        let mut frame_head = [0u8; 5];
        reader
            .read_exact(&mut frame_head)
            .map_err(|_| corrupt(path, "ends before its end frame"))?;
        let kind = frame_head[0];
        let length =
            u32::from_be_bytes([frame_head[1], frame_head[2], frame_head[3], frame_head[4]])
                as usize;
        if length > MAX_FRAME_BYTES {
            return Err(corrupt(path, "a frame longer than the limit"));
        }
        payload.resize(length, 0);
        reader
            .read_exact(&mut payload)
            .map_err(|_| corrupt(path, "a frame cut short"))?;
        if kind == FRAME_END {
            return check_end(path, &payload, records, hasher.finalize());
        }
        hasher.update(&frame_head);
        hasher.update(&payload);
        match kind {
            FRAME_HEADER if !seen_header => {
                seen_header = true;
                visit(Frame::Header(&payload))?;
            }
            FRAME_RECORD if seen_header => {
                records += 1;
                visit(parse_record(path, &payload)?)?;
            }
            _ => return Err(corrupt(path, "frames out of order")),
        }
    }
}

fn parse_record<'a>(path: &Path, payload: &'a [u8]) -> Result<Frame<'a>> {
    if payload.len() < 5 {
        return Err(corrupt(path, "a record frame too short"));
    }
    let space =
        Space::from_code(payload[0]).ok_or_else(|| corrupt(path, "a record of no known space"))?;
    let key_length = u32::from_be_bytes([payload[1], payload[2], payload[3], payload[4]]) as usize;
    let rest = &payload[5..];
    if key_length > rest.len() {
        return Err(corrupt(path, "a key longer than its record"));
    }
    let (key, value) = rest.split_at(key_length);
    Ok(Frame::Record { space, key, value })
}

fn check_end(path: &Path, payload: &[u8], records: u64, checksum: u32) -> Result<()> {
    let expected: [u8; 12] = payload
        .try_into()
        .map_err(|_| corrupt(path, "an end frame of the wrong size"))?;
    let mut count = [0u8; 8];
    count.copy_from_slice(&expected[..8]);
    if u64::from_be_bytes(count) != records {
        return Err(corrupt(
            path,
            "a record count that does not match its records",
        ));
    }
    if u32::from_be_bytes([expected[8], expected[9], expected[10], expected[11]]) != checksum {
        return Err(corrupt(path, "a checksum mismatch"));
    }
    Ok(())
}

fn corrupt(path: &Path, what: &str) -> Error {
    Error::Corruption(format!("snapshot file {}: {what}", path.display()))
}

/// Makes a rename in `path`'s directory durable.
fn sync_directory(path: &Path) -> Result<()> {
    if let Some(directory) = path.parent() {
        File::open(directory)?.sync_all()?;
    }
    Ok(())
}

/// A buffered writer that frames payloads and checksums what it writes.
struct FrameWriter {
    inner: BufWriter<File>,
    hasher: crc32fast::Hasher,
    written: u64,
}

impl FrameWriter {
    fn new(file: File) -> FrameWriter {
        FrameWriter {
            inner: BufWriter::with_capacity(IO_BUFFER_BYTES, file),
            hasher: crc32fast::Hasher::new(),
            written: 0,
        }
    }

    fn raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.inner.write_all(bytes)?;
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Writes one frame whose payload is the concatenation of `parts`.
    fn frame(&mut self, kind: u8, parts: &[&[u8]]) -> Result<()> {
        let length: usize = parts.iter().map(|part| part.len()).sum();
        if length > MAX_FRAME_BYTES {
            return Err(Error::Internal(format!(
                "a snapshot record of {length} bytes is over the {MAX_FRAME_BYTES}-byte limit"
            )));
        }
        let mut head = [kind, 0, 0, 0, 0];
        head[1..].copy_from_slice(&(length as u32).to_be_bytes());
        self.raw(&head)?;
        for part in parts {
            self.raw(part)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(space: Space, start: &[u8], end: &[u8]) -> KeyRange {
        KeyRange {
            space,
            start: start.to_vec(),
            end: end.to_vec(),
        }
    }

    fn put(store: &Store, space: Space, key: &[u8], value: &[u8]) {
        let mut batch = Batch::default();
        batch.put(space, key.to_vec(), value.to_vec());
        store.write(batch).unwrap();
    }

    /// A file written from one store and loaded into another copies exactly the ranges:
    /// keys outside them stay untouched on the receiver, stale keys inside them go.
    #[test]
    fn round_trip_replaces_only_the_ranges() {
        let source = Store::temporary().unwrap();
        let target = Store::temporary().unwrap();
        put(&source, Space::Versions, b"a1", b"x");
        put(&source, Space::Versions, b"a2", b"y");
        put(&source, Space::Versions, b"z9", b"outside");
        put(&target, Space::Versions, b"a3", b"stale");
        put(&target, Space::Meta, b"local", b"kept");
        let ranges = [range(Space::Versions, b"a", b"b")];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("one.snap");
        let summary = source
            .with_snapshot(|view| write(view, &ranges, b"header", &path))
            .unwrap();
        assert_eq!(summary.records, 2);
        assert_eq!(summary.bytes, std::fs::metadata(&path).unwrap().len());
        assert_eq!(load(&target, &ranges, &path).unwrap(), b"header");
        let rows = target.scan(Space::Versions, b"", b"\xff", 10).unwrap();
        assert_eq!(
            rows,
            vec![
                (b"a1".to_vec(), b"x".to_vec()),
                (b"a2".to_vec(), b"y".to_vec())
            ]
        );
        assert_eq!(
            target.get(Space::Meta, b"local").unwrap(),
            Some(b"kept".to_vec())
        );
    }

    /// Any single flipped byte or a cut anywhere is refused before the target changes.
    #[test]
    fn damaged_files_are_refused() {
        let source = Store::temporary().unwrap();
        for i in 0..20u8 {
            put(&source, Space::Latest, &[b'k', i], &[i; 30]);
        }
        let ranges = [range(Space::Latest, b"k", b"l")];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("good.snap");
        source
            .with_snapshot(|view| write(view, &ranges, b"h", &path))
            .unwrap();
        let good = std::fs::read(&path).unwrap();
        let target = Store::temporary().unwrap();
        put(&target, Space::Latest, b"keep", b"1");
        let bad = dir.path().join("bad.snap");
        for position in (0..good.len()).step_by(7) {
            let mut flipped = good.clone();
            flipped[position] ^= 0x40;
            std::fs::write(&bad, &flipped).unwrap();
            assert!(load(&target, &ranges, &bad).is_err(), "flip at {position}");
            std::fs::write(&bad, &good[..position]).unwrap();
            assert!(load(&target, &ranges, &bad).is_err(), "cut at {position}");
        }
        assert_eq!(
            target.scan(Space::Latest, b"", b"\xff", 10).unwrap(),
            vec![(b"keep".to_vec(), b"1".to_vec())]
        );
    }
}
