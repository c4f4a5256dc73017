//! Reading documents for memory: which files are worth reading, their text (plain text,
//! Markdown, code, PDF), and overlapping chunks small enough for the embedding model.
//!
//! Every way a file can be unusable (gone, empty, binary, too large, not UTF-8, a PDF that
//! cannot be read or holds no text) is a [`Skip`] with a reason for the person, never an
//! error that stops a folder.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};
use text_splitter::{ChunkConfig, MarkdownSplitter, TextSplitter};

/// Files larger than this are skipped unread.
pub const MAX_FILE_BYTES: u64 = 50 * 1024 * 1024;
/// Characters per chunk: at least the first, at most the second. 900 characters of English
/// are about 200 tokens, under the model's 256.
pub const CHUNK_CHARS: (usize, usize) = (400, 900);
/// Characters repeated between neighbouring chunks, so a sentence cut at a boundary is
/// whole in one of them.
pub const CHUNK_OVERLAP: usize = 150;

/// What kind of file a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Plain text (`.txt`, or any file whose bytes are UTF-8 text).
    Text,
    /// Markdown (`.md`, `.markdown`): split at its headings and paragraphs.
    Markdown,
    /// PDF: its text layer.
    Pdf,
    /// Source code and configuration, by extension.
    Code,
}

impl Format {
    /// Its name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Markdown => "markdown",
            Self::Pdf => "pdf",
            Self::Code => "code",
        }
    }

    /// The format a file's extension says; `Text` for anything else (its bytes decide).
    pub fn of(path: &Path) -> Self {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        match ext.as_str() {
            "md" | "markdown" | "mdx" => Self::Markdown,
            "pdf" => Self::Pdf,
            "rs" | "py" | "js" | "ts" | "tsx" | "jsx" | "svelte" | "vue" | "go" | "java" | "kt"
            | "c" | "h" | "cc" | "cpp" | "hpp" | "cs" | "rb" | "php" | "swift" | "scala" | "sh"
            | "bash" | "zsh" | "fish" | "ps1" | "sql" | "lua" | "pl" | "r" | "jl" | "hs" | "ml"
            | "ex" | "exs" | "erl" | "clj" | "dart" | "zig" | "nim" | "toml" | "yaml" | "yml"
            | "json" | "ini" | "cfg" | "conf" | "xml" | "html" | "css" | "scss" | "make"
            | "cmake" | "gradle" | "dockerfile" => Self::Code,
            _ => Self::Text,
        }
    }
}

/// Why a file was not indexed, in words for the person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Skip(pub String);

/// A file's text, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Extracted {
    /// What kind of file it is.
    pub format: Format,
    /// Characters of text.
    pub chars: usize,
    /// SHA-256 of the text, hex (unchanged text keeps its chunks).
    pub hash: String,
    /// The chunks, in order, overlapping by about [`CHUNK_OVERLAP`] characters.
    pub chunks: Vec<String>,
}

/// Reads a file's text and cuts it into chunks, or says why it cannot be used.
pub fn read_document(path: &Path) -> Result<Extracted, Skip> {
    let meta = std::fs::metadata(path).map_err(|e| Skip(io_reason(&e)))?;
    if !meta.is_file() {
        return Err(Skip("not a regular file".into()));
    }
    if meta.len() == 0 {
        return Err(Skip("the file is empty".into()));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(Skip(format!(
            "the file is {} MB; files over {} MB are not indexed (split it, or keep its text in a smaller file)",
            meta.len() / 1_000_000,
            MAX_FILE_BYTES / (1024 * 1024)
        )));
    }
    let format = Format::of(path);
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| Skip(io_reason(&e)))?;
    let text = match format {
        Format::Pdf => pdf_text(&bytes)?,
        _ => plain_text(&bytes)?,
    };
    let text = text.trim();
    if text.is_empty() {
        return Err(Skip(match format {
            Format::Pdf => "the PDF holds no text (a scan? OCR it first)".into(),
            _ => "the file holds only white space".into(),
        }));
    }
    Ok(Extracted {
        format,
        chars: text.chars().count(),
        hash: hex(&Sha256::digest(text.as_bytes())),
        chunks: chunk(text, format),
    })
}

/// Cuts text into overlapping chunks of [`CHUNK_CHARS`] characters at the largest
/// boundary that fits (heading, paragraph, line, sentence, word). Long texts are cut into
/// pieces first (see [`pieces`]), so chunks do not overlap across a piece's end.
pub fn chunk(text: &str, format: Format) -> Vec<String> {
    let config = || {
        ChunkConfig::new(CHUNK_CHARS.0..CHUNK_CHARS.1)
            .with_overlap(CHUNK_OVERLAP)
            .expect("the overlap is smaller than the chunk")
    };
    let text = bound_lines(text);
    let pieces = pieces(&text);
    let chunks: Vec<&str> = match format {
        Format::Markdown => {
            let splitter = MarkdownSplitter::new(config());
            pieces.iter().flat_map(|p| splitter.chunks(p)).collect()
        }
        _ => {
            let splitter = TextSplitter::new(config());
            pieces.iter().flat_map(|p| splitter.chunks(p)).collect()
        }
    };
    chunks
        .into_iter()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Lines longer than this are broken before chunking (see [`bound_lines`]).
const LONG_LINE: usize = 4096;
/// Text is chunked in pieces of at most this many bytes (see [`pieces`]).
const PIECE: usize = 8 * 1024;

/// Breaks every line longer than [`LONG_LINE`] bytes into lines of at most that length,
/// at a space where one is near, else between characters. The splitter's time grows with
/// the square of its longest line: a 320 KB line (minified code, a base64 image, a log
/// without newlines) took 4.7 s and 2 MB minutes. Only where lines end changes.
fn bound_lines(text: &str) -> std::borrow::Cow<'_, str> {
    if text.lines().all(|l| l.len() <= LONG_LINE) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + text.len() / LONG_LINE + 1);
    for line in text.split_inclusive('\n') {
        let mut rest = line;
        while rest.len() > LONG_LINE {
            let mut cut = LONG_LINE;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            // A space in the last quarter makes a nicer break than a cut inside a word.
            // Without one, the cut comes at a quarter of the line: the splitter cuts a
            // word longer than a chunk character by character, in time that grows with
            // the square of the word.
            let (head, tail) = match rest[..cut].rfind(' ').filter(|&i| i >= cut * 3 / 4) {
                Some(space) => (&rest[..space], &rest[space + 1..]),
                None => {
                    let mut cut = LONG_LINE / 4;
                    while !rest.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    rest.split_at(cut)
                }
            };
            out.push_str(head);
            out.push('\n');
            rest = tail;
        }
        out.push_str(rest);
    }
    std::borrow::Cow::Owned(out)
}

/// Cuts text with lines of at most [`LONG_LINE`] bytes into pieces of at most [`PIECE`]
/// bytes, each ending at a line break: before a heading, else at an empty line, else at
/// any line break in its second half. The Markdown splitter's time grows with the square
/// of a text's Markdown events (30,000 quotes took 2 s, 100,000 a minute); in pieces it
/// grows in step with the text.
fn pieces(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while rest.len() > PIECE {
        let mut end = PIECE;
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let window = &rest[..end];
        let half = end / 2;
        let cut = [
            window.rfind("\n#"),
            window.rfind("\n\n"),
            window.rfind('\n'),
        ]
        .into_iter()
        .flatten()
        .find(|&at| at >= half)
        .map(|at| at + 1)
        .unwrap_or(end);
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    out.push(rest);
    out
}

/// A one-page PDF 1.4 showing `lines` in Helvetica, with a text layer `read_document`
/// reads back: for tests and fuzz seeds, which need a real PDF without a file.
pub fn text_pdf(lines: &[&str]) -> Vec<u8> {
    let mut content = String::from("BT /F1 12 Tf 72 720 Td 14 TL\n");
    for line in lines {
        content.push_str(&format!(
            "({}) Tj T*\n",
            line.replace('(', "\\(").replace(')', "\\)")
        ));
    }
    content.push_str("ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_owned(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// UTF-8 text, or why the bytes are not text.
fn plain_text(bytes: &[u8]) -> Result<String, Skip> {
    let head = &bytes[..bytes.len().min(8192)];
    if head.contains(&0) {
        return Err(Skip("a binary file (not text)".into()));
    }
    let text = String::from_utf8(bytes.to_vec()).map_err(|_| {
        Skip(
            "not UTF-8 text (a binary file, or text in another encoding: convert it to UTF-8)"
                .into(),
        )
    })?;
    Ok(text
        .strip_prefix('\u{feff}')
        .map(str::to_owned)
        .unwrap_or(text))
}

/// The text layer of a PDF. The parser may panic on damaged files; that is caught and
/// reported as unreadable.
fn pdf_text(bytes: &[u8]) -> Result<String, Skip> {
    if !bytes.starts_with(b"%PDF") {
        return Err(Skip("not a PDF (it does not start with %PDF)".into()));
    }
    let result = std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem(bytes));
    match result {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(e)) => Err(Skip(format!("an unreadable PDF: {e}"))),
        Err(_) => Err(Skip(
            "an unreadable PDF (damaged or of a kind the reader does not know)".into(),
        )),
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "the file is gone".into(),
        std::io::ErrorKind::PermissionDenied => "no permission to read it".into(),
        _ => format!("cannot be read: {e}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_overlap_and_stay_small() {
        let text: String = (0..200)
            .map(|i| format!("Sentence number {i} says something about topic {}. ", i % 7))
            .collect();
        let chunks = chunk(&text, Format::Text);
        assert!(chunks.len() > 5, "{}", chunks.len());
        for c in &chunks {
            assert!(c.chars().count() <= CHUNK_CHARS.1, "{}", c.len());
        }
        // Neighbours share text.
        let tail: String = chunks[0].chars().rev().take(40).collect::<String>();
        let tail: String = tail.chars().rev().collect();
        assert!(
            chunks[1].contains(tail.trim()),
            "{tail:?} not in {:?}",
            chunks[1]
        );
    }

    /// Found by the `document` fuzz target: one 160 KB line took 11 s to chunk, a Markdown
    /// line of nested JSON 3 s.
    #[test]
    fn very_long_lines_are_chunked_whole() {
        let words = (0..40_000)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let base64 = "QUJDRA".repeat(50_000) + "END";
        let multibyte = "é".repeat(10_000);
        for (text, last) in [(words, "w39999"), (base64, "END"), (multibyte, "é")] {
            let broken = bound_lines(&text);
            assert!(broken.lines().all(|l| l.len() <= LONG_LINE));
            assert_eq!(broken.replace(['\n', ' '], ""), text.replace(' ', ""));
            let chunks = chunk(&text, Format::Markdown);
            assert!(
                chunks.len() > text.chars().count() / CHUNK_CHARS.1,
                "{}",
                chunks.len()
            );
            assert!(chunks.iter().all(|c| c.chars().count() <= CHUNK_CHARS.1));
            assert!(chunks.last().unwrap().ends_with(last));
        }
        let short = "a line\nanother\n";
        assert!(matches!(bound_lines(short), std::borrow::Cow::Borrowed(_)));
        // 30,000 quotes in one Markdown text took 2 s to chunk.
        let quotes = "\"a \"b\n".repeat(15_000);
        let cut = pieces(&quotes);
        assert_eq!(cut.concat(), quotes);
        assert!(cut.iter().all(|p| p.len() <= PIECE && p.ends_with('\n')));
        assert!(chunk(&quotes, Format::Markdown).len() > quotes.len() / CHUNK_CHARS.1);
    }

    #[test]
    fn markdown_splits_at_headings() {
        let text = format!(
            "# One\n\n{}\n\n# Two\n\n{}",
            "alpha words here. ".repeat(30),
            "beta words here. ".repeat(30)
        );
        let chunks = chunk(&text, Format::Markdown);
        assert!(chunks.iter().any(|c| c.starts_with("# Two")), "{chunks:#?}");
    }

    #[test]
    fn formats_by_extension() {
        assert_eq!(Format::of(Path::new("a/b.MD")), Format::Markdown);
        assert_eq!(Format::of(Path::new("x.rs")), Format::Code);
        assert_eq!(Format::of(Path::new("x.pdf")), Format::Pdf);
        assert_eq!(Format::of(Path::new("notes")), Format::Text);
    }

    #[test]
    fn bad_bytes_say_why() {
        assert!(plain_text(b"abc\0def").unwrap_err().0.contains("binary"));
        assert!(plain_text(&[0xff, 0xfe, 0x41])
            .unwrap_err()
            .0
            .contains("UTF-8"));
        assert!(pdf_text(b"hello").unwrap_err().0.contains("not a PDF"));
        assert!(pdf_text(b"%PDF-1.4\n garbage")
            .unwrap_err()
            .0
            .contains("unreadable"));
    }
}
