//! `rewrite-timestamp=true`: a layer tar streamed again with every file time later than
//! `SOURCE_DATE_EPOCH` set to the epoch (BuildKit ≥ 0.13 does the same at export).
//!
//! The rewrite works on the tar's 512-byte blocks and changes nothing but times: the
//! `mtime` field of each header (and the `atime`/`ctime` fields of GNU headers), and the
//! `mtime`, `atime` and `ctime` records of PAX extended headers. A time at or before the
//! epoch keeps its bytes, so does every header without a later time; a changed header gets
//! its checksum again. Data blocks, end-of-archive blocks and anything after them are copied
//! as they are. The same input and epoch therefore always give the same output.

use std::io::{self, Read, Write};

use hoist_oci::{Digest, Digester};

const BLOCK: usize = 512;
const SIZE: std::ops::Range<usize> = 124..136;
const MTIME: std::ops::Range<usize> = 136..148;
const CHECKSUM: std::ops::Range<usize> = 148..156;
const TYPEFLAG: usize = 156;
const MAGIC: std::ops::Range<usize> = 257..265;
/// GNU headers (`ustar  \0`) also carry access and change times.
const GNU_ATIME: std::ops::Range<usize> = 345..357;
const GNU_CTIME: std::ops::Range<usize> = 357..369;
/// An old GNU sparse header continues in extension blocks while this byte is set.
const GNU_SPARSE_EXTENDED: usize = 482;
const SPARSE_EXTENSION_EXTENDED: usize = 504;

/// Copies the tar `input` to `output` with times later than `epoch` (Unix seconds) set to
/// it; returns the digest of `input` as read (the source layer's diff ID).
pub(crate) fn clamp_times(
    input: impl Read,
    mut output: impl Write,
    epoch: i64,
) -> io::Result<Digest> {
    let mut input = Hashing {
        inner: input,
        digester: Digester::sha256(),
    };
    let mut header = [0u8; BLOCK];
    // A PAX `size` record gives the size of the next entry's data.
    let mut pax_size: Option<u64> = None;
    while read_block(&mut input, &mut header)? {
        if header.iter().all(|&b| b == 0) {
            output.write_all(&header)?;
            io::copy(&mut input, &mut output)?;
            break;
        }
        let size = parse_number(&header[SIZE])
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| invalid("a tar header has an invalid size field"))?;
        let mut changed = clamp_field(&mut header[MTIME], epoch);
        if header[MAGIC] == *b"ustar  \0" {
            changed |= clamp_field(&mut header[GNU_ATIME], epoch);
            changed |= clamp_field(&mut header[GNU_CTIME], epoch);
        }
        let kind = header[TYPEFLAG];
        if matches!(kind, b'x' | b'g') {
            let mut records = vec![0u8; to_usize(padded(size))?];
            input.read_exact(&mut records)?;
            records.truncate(to_usize(size)?);
            let (records, next_size) = clamp_pax(&records, epoch)?;
            if kind == b'x' {
                pax_size = next_size;
            }
            if records.len() as u64 != size {
                write_octal(&mut header[SIZE], records.len() as u64);
                changed = true;
            }
            if changed {
                set_checksum(&mut header);
            }
            output.write_all(&header)?;
            output.write_all(&records)?;
            output.write_all(&vec![
                0u8;
                to_usize(padded(records.len() as u64))? - records.len()
            ])?;
            continue;
        }
        if changed {
            set_checksum(&mut header);
        }
        output.write_all(&header)?;
        if kind == b'S' && header[GNU_SPARSE_EXTENDED] != 0 {
            let mut extension = [0u8; BLOCK];
            loop {
                input.read_exact(&mut extension)?;
                output.write_all(&extension)?;
                if extension[SPARSE_EXTENSION_EXTENDED] == 0 {
                    break;
                }
            }
        }
        // Meta entries (GNU long names) carry their own data; the PAX size waits for the
        // entry they describe. Header-only types have no data, whatever their size says
        // (as Go's archive/tar reads them).
        let data = match kind {
            b'L' | b'K' => size,
            b'1' | b'2' | b'3' | b'4' | b'5' | b'6' => {
                pax_size = None;
                0
            }
            _ => pax_size.take().unwrap_or(size),
        };
        let copied = io::copy(&mut (&mut input).take(padded(data)), &mut output)?;
        if copied != padded(data) {
            return Err(truncated());
        }
    }
    Ok(input.digester.finish().0)
}

/// Reads one block; `false` at the end of the input before it.
fn read_block(input: &mut impl Read, block: &mut [u8; BLOCK]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < BLOCK {
        match input.read(&mut block[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(truncated()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// The PAX records with their times clamped (records that stay keep their bytes), and the
/// `size` record's value when there is one.
fn clamp_pax(records: &[u8], epoch: i64) -> io::Result<(Vec<u8>, Option<u64>)> {
    let mut out = Vec::with_capacity(records.len());
    let mut size = None;
    let mut rest = records;
    while !rest.is_empty() {
        if rest.iter().all(|&b| b == 0) {
            out.extend_from_slice(rest);
            break;
        }
        let bad = || invalid("a PAX header has an invalid record");
        let space = rest.iter().position(|&b| b == b' ').ok_or_else(bad)?;
        let length: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&n| n > space + 1 && n <= rest.len())
            .ok_or_else(bad)?;
        let record = &rest[..length];
        rest = &rest[length..];
        let body = record[space + 1..].strip_suffix(b"\n").ok_or_else(bad)?;
        let eq = body.iter().position(|&b| b == b'=').ok_or_else(bad)?;
        let (key, value) = (&body[..eq], &body[eq + 1..]);
        match key {
            b"mtime" | b"atime" | b"ctime" if pax_time_after(value, epoch) => {
                out.extend_from_slice(&pax_record(key, epoch.to_string().as_bytes()));
            }
            _ => {
                if key == b"size" {
                    size = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok());
                }
                out.extend_from_slice(record);
            }
        }
    }
    Ok((out, size))
}

/// Whether a PAX time (`1700000000`, `1700000000.5`, `-1.25`) is later than `epoch`; a value
/// that does not parse is left alone.
fn pax_time_after(value: &[u8], epoch: i64) -> bool {
    let Ok(value) = std::str::from_utf8(value) else {
        return false;
    };
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    let Ok(seconds) = whole.parse::<i64>() else {
        return false;
    };
    let has_fraction = fraction.bytes().any(|b| b != b'0');
    // A negative value with a fraction is below its whole part.
    seconds > epoch || (seconds == epoch && has_fraction && !whole.starts_with('-'))
}

/// `"<length> key=value\n"`, the length counting itself.
fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3;
    let mut length = body + 1;
    while body + length.to_string().len() != length {
        length = body + length.to_string().len();
    }
    let mut record = format!("{length} ").into_bytes();
    record.extend_from_slice(key);
    record.push(b'=');
    record.extend_from_slice(value);
    record.push(b'\n');
    record
}

/// Sets a numeric time field to `epoch` when it holds a later time; whether it did.
fn clamp_field(field: &mut [u8], epoch: i64) -> bool {
    match parse_number(field) {
        Some(time) if time > i128::from(epoch) => {
            match u64::try_from(epoch) {
                Ok(n) if n < 8u64.pow(u32::try_from(field.len() - 1).unwrap_or(0)) => {
                    write_octal(field, n);
                }
                _ => write_base256(field, epoch),
            }
            true
        }
        _ => false,
    }
}

/// A numeric header field: octal digits (space or NUL padded), or base-256 when its first
/// byte has the high bit set.
fn parse_number(field: &[u8]) -> Option<i128> {
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        let negative = field[0] & 0x40 != 0;
        let mut value: i128 = if negative { -1 } else { 0 };
        for (i, &b) in field.iter().enumerate() {
            let b = if i == 0 {
                b & 0x7f | if negative { 0x80 } else { 0 }
            } else {
                b
            };
            value = value.checked_mul(256)? | i128::from(b);
        }
        return Some(value);
    }
    let text = field
        .iter()
        .skip_while(|&&b| b == b' ' || b == 0)
        .take_while(|&&b| b != b' ' && b != 0)
        .copied()
        .collect::<Vec<u8>>();
    if text.is_empty() {
        return Some(0);
    }
    i128::from_str_radix(std::str::from_utf8(&text).ok()?, 8).ok()
}

/// Zero-padded octal digits and a NUL, as Go's archive/tar writes them.
fn write_octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
    field[digits] = 0;
}

/// Two's complement big-endian with the high bit of the first byte set.
fn write_base256(field: &mut [u8], value: i64) {
    let fill = if value < 0 { 0xff } else { 0 };
    field.fill(fill);
    let bytes = value.to_be_bytes();
    let start = field.len() - bytes.len();
    field[start..].copy_from_slice(&bytes);
    field[0] |= 0x80;
}

/// The header checksum: the sum of its bytes with the checksum field as spaces, written as
/// six octal digits, a NUL and a space.
fn set_checksum(header: &mut [u8; BLOCK]) {
    header[CHECKSUM].fill(b' ');
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[CHECKSUM.start..CHECKSUM.start + 6].copy_from_slice(format!("{sum:06o}").as_bytes());
    header[CHECKSUM.start + 6] = 0;
}

fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK as u64) * BLOCK as u64
}

fn to_usize(size: u64) -> io::Result<usize> {
    usize::try_from(size).map_err(|_| invalid("a PAX header is too large"))
}

fn invalid(reason: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason.to_owned())
}

fn truncated() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the layer tar ends inside an entry",
    )
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    digester: Digester,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_compare_with_fractions_and_signs() {
        assert!(pax_time_after(b"101", 100));
        assert!(pax_time_after(b"100.5", 100));
        assert!(!pax_time_after(b"100.000", 100));
        assert!(!pax_time_after(b"100", 100));
        assert!(!pax_time_after(b"-1.5", -1));
        assert!(pax_time_after(b"0.5", 0));
        assert!(!pax_time_after(b"x", 0));
    }

    #[test]
    fn pax_records_count_their_own_length() {
        assert_eq!(pax_record(b"mtime", b"1"), b"11 mtime=1\n".to_vec());
        assert_eq!(
            pax_record(b"mtime", b"1234567"),
            b"17 mtime=1234567\n".to_vec()
        );
    }

    #[test]
    fn numeric_fields_read_octal_and_base256() {
        assert_eq!(parse_number(b"00000000144\0"), Some(100));
        assert_eq!(parse_number(b"     144 \0\0\0"), Some(100));
        let mut field = [0u8; 12];
        write_base256(&mut field, 100);
        assert_eq!(parse_number(&field), Some(100));
        write_base256(&mut field, -5);
        assert_eq!(parse_number(&field), Some(-5));
    }
}
