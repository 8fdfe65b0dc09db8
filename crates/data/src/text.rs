//! Decoding text files as UTF-8 with an error that says where the first bad byte is.
//!
//! `read_to_string` and `BufRead::lines` fail with "stream did not contain valid UTF-8" and no
//! position; a user with a stray Latin-1 byte in a 50 MB file needs the line, the column and the
//! byte offset to find it. The TREC readers, the TOML config and the JSONL readers use this.

/// The UTF-8 byte order mark, which editors on Windows put at the start of a file.
pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Where a file stops being valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column} (byte offset {offset}): not valid UTF-8; the file must be UTF-8")]
pub struct InvalidUtf8 {
    /// 1-based line of the first invalid byte.
    pub line: usize,
    /// 1-based column, counted in characters, of the first invalid byte within its line.
    pub column: usize,
    /// 0-based byte offset of the first invalid byte in the file.
    pub offset: usize,
}

impl InvalidUtf8 {
    /// Locates `err`, which came from decoding `bytes`, in a file where `bytes` starts at 1-based
    /// line `line` and 0-based byte offset `offset`.
    pub fn locate(bytes: &[u8], err: &std::str::Utf8Error, line: usize, offset: usize) -> Self {
        let valid = &bytes[..err.valid_up_to()];
        let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        // Valid by construction: `valid_up_to` marks the end of the longest UTF-8 prefix.
        let column = std::str::from_utf8(&valid[line_start..]).map_or(0, |v| v.chars().count()) + 1;
        let newlines = valid.iter().filter(|&&b| b == b'\n').count();
        InvalidUtf8 { line: line + newlines, column, offset: offset + valid.len() }
    }
}

/// A whole file's bytes as text, a leading byte order mark dropped (otherwise it would become
/// part of the first field: a TREC query id `\u{feff}1` silently matches nothing).
pub fn decode_file_text(mut bytes: Vec<u8>) -> Result<String, InvalidUtf8> {
    let bom = if bytes.starts_with(UTF8_BOM) { UTF8_BOM.len() } else { 0 };
    bytes.drain(..bom);
    String::from_utf8(bytes).map_err(|e| InvalidUtf8::locate(e.as_bytes(), &e.utf8_error(), 1, bom))
}

/// One line of a file (without its line break) as text; `line` (1-based) and `offset` (0-based)
/// place it in the file for the error.
pub fn decode_line(bytes: &[u8], line: usize, offset: usize) -> Result<&str, InvalidUtf8> {
    std::str::from_utf8(bytes).map_err(|e| InvalidUtf8::locate(bytes, &e, line, offset))
}

/// Why a line could not be read: the file failed, or the line is not UTF-8.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// Reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The line is not UTF-8 (where the first bad byte is).
    #[error("{0}")]
    Utf8(#[from] InvalidUtf8),
}

/// The lines of a UTF-8 text stream with their 1-based line numbers, the line break (`\n` or
/// `\r\n`) removed and a leading byte order mark dropped. Lines are read as bytes and decoded
/// here, not with `BufRead::lines`, whose UTF-8 error names neither the line nor the byte: the
/// error of a bad line is an [`InvalidUtf8`] with its line, column and byte offset. Every
/// line-oriented reader of the workspace (JSONL corpora, `encode` input, collections and
/// queries) reads through this.
pub struct TextLines<R> {
    reader: R,
    buf: Vec<u8>,
    line: usize,
    offset: usize,
}

impl<R: std::io::BufRead> TextLines<R> {
    /// Lines of `reader`.
    pub fn new(reader: R) -> Self {
        TextLines { reader, buf: Vec::new(), line: 0, offset: 0 }
    }
}

impl TextLines<std::io::BufReader<std::fs::File>> {
    /// Lines of the file at `path`.
    pub fn open(path: &std::path::Path) -> std::io::Result<Self> {
        Ok(Self::new(std::io::BufReader::new(std::fs::File::open(path)?)))
    }
}

impl<R: std::io::BufRead> Iterator for TextLines<R> {
    type Item = Result<(usize, String), LineError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.buf.clear();
        let read = match self.reader.read_until(b'\n', &mut self.buf) {
            Ok(0) => return None,
            Ok(n) => n,
            Err(e) => return Some(Err(e.into())),
        };
        self.line += 1;
        let mut start = self.offset;
        self.offset += read;
        let mut bytes = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
        bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        if self.line == 1 && bytes.starts_with(UTF8_BOM) {
            bytes = &bytes[UTF8_BOM.len()..];
            start += UTF8_BOM.len();
        }
        Some(decode_line(bytes, self.line, start).map(|l| (self.line, l.to_string())).map_err(LineError::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_line_column_and_offset_of_the_first_bad_byte() {
        let err = decode_file_text(b"ab\ncd\xE9f\n\xFF".to_vec()).unwrap_err();
        assert_eq!(err, InvalidUtf8 { line: 2, column: 3, offset: 5 });
        assert!(err.to_string().starts_with("line 2, column 3 (byte offset 5)"), "{err}");
        // Columns count characters after a dropped BOM; offsets count the file's bytes, BOM included.
        let err = decode_file_text(b"\xEF\xBB\xBF\xC3\xA9\xC3".to_vec()).unwrap_err();
        assert_eq!(err, InvalidUtf8 { line: 1, column: 2, offset: 5 });
        let err = decode_line(b"x\xC0", 7, 100).unwrap_err();
        assert_eq!(err, InvalidUtf8 { line: 7, column: 2, offset: 101 });
    }

    #[test]
    fn lines_are_numbered_stripped_and_checked() {
        let text: &[u8] = b"\xEF\xBB\xBFa\r\n\nb\nc\xFF\n";
        let lines: Vec<_> = TextLines::new(text).collect();
        let ok: Vec<(usize, String)> = lines[..3].iter().map(|l| l.as_ref().unwrap().clone()).collect();
        assert_eq!(ok, [(1, "a".to_string()), (2, String::new()), (3, "b".to_string())]);
        match &lines[3] {
            Err(LineError::Utf8(e)) => assert_eq!(*e, InvalidUtf8 { line: 4, column: 2, offset: 10 }),
            other => panic!("{other:?}"),
        }
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn a_leading_bom_is_dropped_and_only_there() {
        assert_eq!(decode_file_text(b"\xEF\xBB\xBFq1 0 d 1\n".to_vec()).unwrap(), "q1 0 d 1\n");
        assert_eq!(decode_file_text(b"a\xEF\xBB\xBF".to_vec()).unwrap(), "a\u{feff}");
    }
}
