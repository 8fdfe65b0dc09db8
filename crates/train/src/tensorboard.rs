//! TensorBoard event files, written without TensorFlow or a protobuf library.
//!
//! A file `events.out.tfevents.<unix seconds>.<host>` is a sequence of TFRecords: a u64 length
//! (little-endian), the masked CRC-32C of those 8 bytes, the data, the masked CRC-32C of the
//! data. Each record's data is an `Event` protocol buffer: `wall_time` (double, field 1), `step`
//! (int64, field 2) and either `file_version` (string, field 3; `"brain.Event:2"` in the first
//! record) or `summary` (field 5), a `Summary` whose repeated `value` (field 1) holds
//! `Summary.Value { tag (string, field 1), simple_value (float, field 2) }`: a scalar. The few
//! fields are encoded by hand; [`read_events`] decodes them back (both CRCs checked).
//!
//! [`crate::runlog::MetricsLog`] writes every `metrics.jsonl` event here too when the config
//! says `[log] tensorboard = true` (`hybrid-ir train --tensorboard`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Result, TrainError};

/// What the first record of a file says.
pub const FILE_VERSION: &str = "brain.Event:2";

/// The CRC-32C of `data`, masked as TFRecord files store it.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One TFRecord: length, its masked CRC, `data`, its masked CRC.
pub fn frame_record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u64, wire_type: u64) {
    varint(out, (field << 3) | wire_type);
}

fn bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    key(out, field, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// One decoded `Event`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Seconds since the Unix epoch.
    pub wall_time: f64,
    /// Global step.
    pub step: i64,
    /// `file_version` (the first record of a file).
    pub file_version: Option<String>,
    /// The summary's scalars, `(tag, simple_value)`.
    pub scalars: Vec<(String, f32)>,
}

impl Event {
    /// The `Event` protocol buffer.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        key(&mut out, 1, 1);
        out.extend_from_slice(&self.wall_time.to_le_bytes());
        key(&mut out, 2, 0);
        varint(&mut out, self.step as u64);
        if let Some(version) = &self.file_version {
            bytes_field(&mut out, 3, version.as_bytes());
        }
        if !self.scalars.is_empty() {
            let mut summary = Vec::new();
            for (tag, value) in &self.scalars {
                let mut v = Vec::new();
                bytes_field(&mut v, 1, tag.as_bytes());
                key(&mut v, 2, 5);
                v.extend_from_slice(&value.to_le_bytes());
                bytes_field(&mut summary, 1, &v);
            }
            bytes_field(&mut out, 5, &summary);
        }
        out
    }

    /// Decodes an `Event` (fields other than the ones above are skipped).
    pub fn decode(data: &[u8]) -> std::result::Result<Self, String> {
        let mut event = Event { wall_time: 0.0, step: 0, file_version: None, scalars: Vec::new() };
        for (field, value) in fields(data)? {
            match (field, value) {
                (1, Field::Fixed64(v)) => event.wall_time = f64::from_bits(v),
                (2, Field::Varint(v)) => event.step = v as i64,
                (3, Field::Bytes(b)) => event.file_version = Some(utf8(b)?),
                (5, Field::Bytes(summary)) => {
                    for (field, value) in fields(summary)? {
                        let (1, Field::Bytes(v)) = (field, value) else { continue };
                        let (mut tag, mut simple) = (None, None);
                        for (field, value) in fields(v)? {
                            match (field, value) {
                                (1, Field::Bytes(t)) => tag = Some(utf8(t)?),
                                (2, Field::Fixed32(x)) => simple = Some(f32::from_bits(x)),
                                _ => {}
                            }
                        }
                        if let (Some(tag), Some(value)) = (tag, simple) {
                            event.scalars.push((tag, value));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(event)
    }
}

fn utf8(b: &[u8]) -> std::result::Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|e| format!("a string field is not UTF-8: {e}"))
}

/// A protobuf field's value by wire type.
enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

fn fields(mut data: &[u8]) -> std::result::Result<Vec<(u64, Field<'_>)>, String> {
    fn read_varint(data: &mut &[u8]) -> std::result::Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = data.split_first().ok_or("truncated varint")?;
            *data = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes".into())
    }
    fn take<'a>(data: &mut &'a [u8], n: usize) -> std::result::Result<&'a [u8], String> {
        if data.len() < n {
            return Err(format!("field of {n} bytes with {} left", data.len()));
        }
        let (head, rest) = data.split_at(n);
        *data = rest;
        Ok(head)
    }
    let mut out = Vec::new();
    while !data.is_empty() {
        let k = read_varint(&mut data)?;
        let value = match k & 7 {
            0 => Field::Varint(read_varint(&mut data)?),
            1 => Field::Fixed64(u64::from_le_bytes(take(&mut data, 8)?.try_into().expect("8 bytes"))),
            2 => {
                let n = read_varint(&mut data)? as usize;
                Field::Bytes(take(&mut data, n)?)
            }
            5 => Field::Fixed32(u32::from_le_bytes(take(&mut data, 4)?.try_into().expect("4 bytes"))),
            w => return Err(format!("unsupported wire type {w}")),
        };
        out.push((k >> 3, value));
    }
    Ok(out)
}

/// The records of a TFRecord file's bytes, each CRC checked.
pub fn read_records(mut bytes: &[u8]) -> std::result::Result<Vec<Vec<u8>>, String> {
    let mut records = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 12 {
            return Err(format!("record {}: truncated header ({} bytes)", records.len(), bytes.len()));
        }
        let len_bytes = &bytes[..8];
        let crc = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if crc != masked_crc32c(len_bytes) {
            return Err(format!("record {}: length CRC mismatch", records.len()));
        }
        let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes")) as usize;
        if bytes.len() < 12 + len + 4 {
            return Err(format!("record {}: truncated data", records.len()));
        }
        let data = &bytes[12..12 + len];
        let crc = u32::from_le_bytes(bytes[12 + len..16 + len].try_into().expect("4 bytes"));
        if crc != masked_crc32c(data) {
            return Err(format!("record {}: data CRC mismatch", records.len()));
        }
        records.push(data.to_vec());
        bytes = &bytes[16 + len..];
    }
    Ok(records)
}

/// Every event of an event file, both CRCs of every record checked.
pub fn read_events(path: &Path) -> Result<Vec<Event>> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
    let bad = |e: String| TrainError::Other(format!("{}: {e}", path.display()));
    read_records(&bytes).map_err(bad)?.iter().map(|r| Event::decode(r).map_err(bad)).collect()
}

/// Appends scalar events to one event file, flushing each.
#[derive(Debug)]
pub struct EventWriter {
    path: PathBuf,
    file: File,
}

impl EventWriter {
    /// Creates `dir` and a new `events.out.tfevents.<unix seconds>.<host>` in it (a `.N` suffix
    /// when that name is taken), starting with the `file_version` record.
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let base = format!("events.out.tfevents.{secs}.{}", host_name());
        let mut k = 0;
        let (path, file) = loop {
            let name = if k == 0 { base.clone() } else { format!("{base}.{k}") };
            let path = dir.join(name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => break (path, file),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && k < 1000 => k += 1,
                Err(e) => return Err(TrainError::io(&path, e)),
            }
        };
        let mut writer = Self { path, file };
        writer.write(&Event { wall_time: now(), step: 0, file_version: Some(FILE_VERSION.into()), scalars: Vec::new() })?;
        Ok(writer)
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the scalars `(tag, value)` of `step` as one event (nothing for an empty list).
    pub fn scalars(&mut self, step: u64, scalars: &[(String, f64)]) -> Result<()> {
        if scalars.is_empty() {
            return Ok(());
        }
        let scalars = scalars.iter().map(|(t, v)| (t.clone(), *v as f32)).collect();
        self.write(&Event { wall_time: now(), step: step as i64, file_version: None, scalars })
    }

    fn write(&mut self, event: &Event) -> Result<()> {
        let record = frame_record(&event.encode());
        self.file.write_all(&record).and_then(|_| self.file.flush()).map_err(|e| TrainError::io(&self.path, e))
    }
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// The machine's name for the file name (as TensorFlow's writers put it there): the kernel's
/// host name, else `$HOSTNAME`, else `localhost`; characters other than letters, digits, `-`,
/// `_` and `.` become `_`.
fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into());
    name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_and_mask_match_tensorflow() {
        // CRC-32C check value, and TFRecord's mask of it.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(masked_crc32c(b"123456789"), 0xe306_9283u32.rotate_right(15).wrapping_add(0xa282_ead8));
        // The first 12 bytes of every TensorBoard file with a 24-byte first record, as written by
        // TensorFlow: length 24, masked CRC of the length.
        let header = frame_record(&[0u8; 24]);
        assert_eq!(&header[..12], &[24, 0, 0, 0, 0, 0, 0, 0, 0xa3, 0x7f, 0x4b, 0x22][..]);
    }

    #[test]
    fn events_round_trip() {
        let e = Event {
            wall_time: 1_700_000_000.25,
            step: 300,
            file_version: None,
            scalars: vec![("train/loss".into(), 0.5), ("val/loss".into(), f32::NAN)],
        };
        let d = Event::decode(&e.encode()).unwrap();
        assert_eq!((d.wall_time, d.step, d.scalars[0].clone()), (e.wall_time, 300, ("train/loss".into(), 0.5)));
        assert!(d.scalars[1].1.is_nan());
        let v = Event { wall_time: 1.0, step: 0, file_version: Some(FILE_VERSION.into()), scalars: vec![] };
        assert_eq!(Event::decode(&v.encode()).unwrap(), v);
        // Step 300 as a two-byte varint after the wall time.
        assert_eq!(&e.encode()[9..12], &[0x10, 0xac, 0x02]);
    }

    #[test]
    fn a_damaged_record_is_refused() {
        let mut bytes = frame_record(b"hello");
        assert_eq!(read_records(&bytes).unwrap(), vec![b"hello".to_vec()]);
        bytes[13] ^= 1;
        assert!(read_records(&bytes).unwrap_err().contains("data CRC"));
        bytes[13] ^= 1;
        bytes[0] ^= 1;
        assert!(read_records(&bytes).unwrap_err().contains("length CRC"));
        assert!(read_records(&frame_record(b"hello")[..10]).unwrap_err().contains("truncated"));
    }
}
