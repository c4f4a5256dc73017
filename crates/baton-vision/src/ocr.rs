//! [`TesseractOcr`]: the [`OcrEngine`] over Tesseract, fed by [`mod@crate::preprocess`].

use crate::cv::bytes;
use crate::preprocess::{preprocess, PreprocessOptions, Preprocessed};
use baton_core::{BoundingBox, Image, OcrEngine, OcrOptions, OcrResult, OcrWord, VisionError};
use opencv::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tesseract::Tesseract;

/// Where Debian and others install Tesseract's language data.
const TESSDATA_DIRS: &[&str] = &[
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
];

/// Whether Tesseract's OpenMP thread limit is already chosen (`OMP_THREAD_LIMIT`).
///
/// Debian's libtesseract is built with OpenMP, whose worker threads busy-wait; on a
/// loaded machine a 1920x1080 page took 3.4 s with the default team and 0.45 s with
/// `OMP_THREAD_LIMIT=1`. libgomp reads that variable once, when it is loaded (before
/// `main`), so a program must have it in its environment from the start: the `baton`
/// CLI and the desktop app re-execute themselves with it set
/// ([`reexec_with_single_threaded_openmp`]).
pub fn openmp_limit_set() -> bool {
    std::env::var_os("OMP_THREAD_LIMIT").is_some()
}

/// Re-executes the running program with `OMP_THREAD_LIMIT=1` unless the variable is set
/// (see [`openmp_limit_set`]). Returns only when it is already set or the re-execution
/// failed; the error is then returned and OCR merely runs slower.
#[cfg(unix)]
pub fn reexec_with_single_threaded_openmp() -> Option<std::io::Error> {
    use std::os::unix::process::CommandExt;
    if openmp_limit_set() {
        return None;
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return Some(e),
    };
    Some(
        std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env("OMP_THREAD_LIMIT", "1")
            .exec(),
    )
}

/// How Tesseract segments the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// Full layout analysis: columns, paragraphs, lines (documents, chat logs).
    #[default]
    Auto,
    /// Find as much text as possible in no particular order (UI screenshots: text on
    /// buttons and in fields, which layout analysis drops as "image" regions).
    Sparse,
    /// One uniform block of text.
    SingleBlock,
    /// One line of text.
    SingleLine,
}

impl Layout {
    fn psm(self) -> tesseract::PageSegMode {
        use tesseract::PageSegMode as P;
        match self {
            Layout::Auto => P::PsmAuto,
            Layout::Sparse => P::PsmSparseText,
            Layout::SingleBlock => P::PsmSingleBlock,
            Layout::SingleLine => P::PsmSingleLine,
        }
    }
}

/// Tesseract OCR with per-image OpenCV preprocessing.
///
/// A tall image is cut into horizontal bands of about equal text (only through blank rows,
/// so no line of text is split), recognised at the same time on as many cores (Tesseract
/// itself runs one thread here). Up to four Tesseract instances are kept per
/// language set and reused (initialising one costs about 100 ms).
pub struct TesseractOcr {
    tessdata: PathBuf,
    preprocess: PreprocessOptions,
    layout: Layout,
    idle: Mutex<Vec<(String, Tesseract)>>,
}

/// At most this many bands are recognised at once.
const MAX_BANDS: usize = 4;
/// A band is at least this many rows of the processed image.
const MIN_BAND_ROWS: usize = 96;

impl std::fmt::Debug for TesseractOcr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TesseractOcr")
            .field("tessdata", &self.tessdata)
            .field("preprocess", &self.preprocess)
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

/// Finds the tessdata directory: `$TESSDATA_PREFIX` first, then the usual system places.
pub fn find_tessdata() -> Result<PathBuf, VisionError> {
    let mut tried = Vec::new();
    if let Some(p) = std::env::var_os("TESSDATA_PREFIX") {
        let p = PathBuf::from(p);
        for cand in [p.clone(), p.join("tessdata")] {
            if cand.join("eng.traineddata").exists() || has_traineddata(&cand) {
                return Ok(cand);
            }
            tried.push(cand.display().to_string());
        }
    }
    for d in TESSDATA_DIRS {
        let p = PathBuf::from(d);
        if has_traineddata(&p) {
            return Ok(p);
        }
        tried.push(d.to_string());
    }
    Err(VisionError::Model(format!(
        "no Tesseract language data found (looked in {}); install it with `sudo apt-get install tesseract-ocr-eng` or set TESSDATA_PREFIX",
        tried.join(", ")
    )))
}

fn has_traineddata(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|it| {
            it.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".traineddata"))
        })
        .unwrap_or(false)
}

impl TesseractOcr {
    /// An engine using the system's Tesseract data and default preprocessing.
    pub fn new() -> Result<Self, VisionError> {
        Ok(Self::with_tessdata(find_tessdata()?))
    }

    /// An engine reading language data from `tessdata`.
    pub fn with_tessdata(tessdata: PathBuf) -> Self {
        Self {
            tessdata,
            preprocess: PreprocessOptions::default(),
            layout: Layout::Auto,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Replaces the preprocessing options.
    pub fn with_preprocess(mut self, opts: PreprocessOptions) -> Self {
        self.preprocess = opts;
        self
    }

    /// Replaces the page layout mode.
    pub fn with_layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// Checks the language codes and that their data is installed; returns them joined
    /// with `+` as Tesseract wants.
    pub fn check_languages(&self, languages: &[String]) -> Result<String, VisionError> {
        if languages.is_empty() {
            return Err(VisionError::Model(
                "no OCR language given (for example `eng`)".into(),
            ));
        }
        for lang in languages {
            if lang.is_empty() || !lang.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(VisionError::Model(format!(
                    "`{lang}` is not a Tesseract language code (codes look like `eng`, `deu`, `chi_sim`)"
                )));
            }
            let file = self.tessdata.join(format!("{lang}.traineddata"));
            if !file.exists() {
                let pkg = lang.replace('_', "-").to_lowercase();
                return Err(VisionError::Model(format!(
                    "the Tesseract language `{lang}` is not installed ({} is missing); install it with `sudo apt-get install tesseract-ocr-{pkg}`",
                    file.display()
                )));
            }
        }
        Ok(languages.join("+"))
    }

    /// Preprocesses and recognises, returning the preprocessing report too.
    pub fn recognize_detailed(
        &self,
        image: &Image,
        options: &OcrOptions,
    ) -> Result<(OcrResult, Preprocessed), VisionError> {
        image.validate()?;
        crate::load::Limits::default().check(image.width, image.height)?;
        let langs = self.check_languages(&options.languages)?;
        let pre = preprocess(image, &self.preprocess)?;
        let tsv = self.run_tesseract(&langs, &pre)?;
        let result = parse_tsv(&tsv, |b| pre.to_original(b));
        Ok((result, pre))
    }

    fn run_tesseract(&self, langs: &str, pre: &Preprocessed) -> Result<String, VisionError> {
        let gray = &pre.gray;
        let (w, h) = (gray.cols() as usize, gray.rows() as usize);
        let data = bytes(gray)?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let bands = ink_bands(data, w, h, cores.min(MAX_BANDS));
        let mut engines = Vec::with_capacity(bands.len());
        for _ in &bands {
            engines.push(self.engine(langs)?);
        }
        let psm = self.layout.psm();
        let results: Vec<Result<(Tesseract, String), VisionError>> = std::thread::scope(|scope| {
            let running: Vec<_> = bands
                .iter()
                .zip(engines)
                .map(|(&(top, bottom), tess)| {
                    let rows = &data[top * w..bottom * w];
                    scope.spawn(move || recognize_band(tess, psm, rows, w, bottom - top))
                })
                .collect();
            running
                .into_iter()
                .map(|r| {
                    r.join().unwrap_or_else(|_| {
                        Err(VisionError::Failed("Tesseract crashed on the image".into()))
                    })
                })
                .collect()
        });
        let mut tsv = String::new();
        let mut failure = None;
        for (i, (result, &(top, _))) in results.into_iter().zip(&bands).enumerate() {
            match result {
                Ok((tess, band)) => {
                    shift_tsv(&band, i, top, &mut tsv);
                    let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                    if idle.len() < MAX_BANDS {
                        idle.push((langs.to_owned(), tess));
                    }
                }
                Err(e) => failure = Some(e),
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(tsv),
        }
    }

    /// An idle Tesseract instance for `langs`, or a new one.
    fn engine(&self, langs: &str) -> Result<Tesseract, VisionError> {
        {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(i) = idle.iter().position(|(l, _)| l == langs) {
                return Ok(idle.swap_remove(i).1);
            }
            // Instances of other languages are not wanted any more.
            idle.clear();
        }
        let dir = self.tessdata.to_string_lossy().into_owned();
        Tesseract::new(Some(&dir), Some(langs))
            .map_err(|e| {
                VisionError::Model(format!(
                    "Tesseract could not load `{langs}` from {dir}: {e}"
                ))
            })?
            // Tesseract prints layout statistics to stderr on some inputs.
            .set_variable("debug_file", "/dev/null")
            .map_err(|e| VisionError::Failed(format!("cannot configure Tesseract: {e}")))
    }
}

/// Recognises one band (8-bit gray rows of width `w`) and returns the instance with its TSV.
fn recognize_band(
    mut tess: Tesseract,
    psm: tesseract::PageSegMode,
    rows: &[u8],
    w: usize,
    h: usize,
) -> Result<(Tesseract, String), VisionError> {
    tess.set_page_seg_mode(psm);
    let mut tess = tess
        .set_frame(rows, w as i32, h as i32, 1, w as i32)
        .map_err(|e| VisionError::Failed(format!("Tesseract refused the image: {e}")))?
        .set_source_resolution(300)
        .recognize()
        .map_err(|e| VisionError::Failed(format!("Tesseract recognition failed: {e}")))?;
    let tsv = tess
        .get_tsv_text(0)
        .map_err(|e| VisionError::Failed(format!("Tesseract gave no result: {e}")))?;
    Ok((tess, tsv))
}

/// Up to `parts` horizontal bands `(top, bottom)` of a `w` × `h` gray image (dark ink on
/// light), with about equal text each, cut only in the middle of runs of rows without
/// strokes.
fn ink_bands(data: &[u8], w: usize, h: usize, parts: usize) -> Vec<(usize, usize)> {
    let whole = vec![(0, h)];
    if parts < 2 || h < 2 * MIN_BAND_ROWS || w == 0 {
        return whole;
    }
    // Text is measured by its strokes (light-to-dark edges along a row), which a solid
    // dark bar or frame has few of.
    let ink: Vec<u64> = data
        .chunks_exact(w)
        .take(h)
        .map(|row| row.windows(2).filter(|p| p[0] >= 128 && p[1] < 128).count() as u64)
        .collect();
    let total: u64 = ink.iter().sum();
    if total == 0 {
        return whole;
    }
    // The middle row of every run of at least two blank rows: where a cut splits no glyph.
    let mut gaps = Vec::new();
    let mut run_start = None;
    for (y, &n) in ink.iter().chain(std::iter::once(&1)).enumerate() {
        match (n == 0, run_start) {
            (true, None) => run_start = Some(y),
            (false, Some(start)) => {
                if y - start >= 2 {
                    gaps.push((start + y) / 2);
                }
                run_start = None;
            }
            _ => {}
        }
    }
    let mut cuts = Vec::new();
    let mut acc = 0u64;
    let mut target = 1;
    for (y, &n) in ink.iter().enumerate() {
        acc += n;
        if target < parts && acc * parts as u64 >= total * target as u64 {
            target += 1;
            let last = cuts.last().copied().unwrap_or(0);
            let nearest = gaps
                .iter()
                .copied()
                .filter(|&g| g >= last + MIN_BAND_ROWS && g + MIN_BAND_ROWS <= h)
                .min_by_key(|&g| g.abs_diff(y));
            if let Some(g) = nearest {
                if !cuts.contains(&g) {
                    cuts.push(g);
                }
            }
        }
    }
    cuts.sort_unstable();
    let mut bands = Vec::new();
    let mut top = 0;
    for cut in cuts {
        if cut > top {
            bands.push((top, cut));
            top = cut;
        }
    }
    bands.push((top, h));
    bands
}

/// Appends the word rows of band `index` (starting at row `top`) to `out`, with its blocks
/// numbered apart from other bands' and its boxes moved down to the whole image.
fn shift_tsv(band: &str, index: usize, top: usize, out: &mut String) {
    for row in band.lines() {
        let mut cols: Vec<String> = row.splitn(12, '\t').map(str::to_owned).collect();
        if cols.len() < 12 || cols[0] == "level" {
            continue;
        }
        let shift = |v: &str, by: i64| {
            v.trim()
                .parse::<i64>()
                .map_or(v.to_owned(), |n| (n + by).to_string())
        };
        cols[2] = shift(&cols[2], index as i64 * 100_000);
        cols[7] = shift(&cols[7], top as i64);
        out.push_str(&cols.join("\t"));
        out.push('\n');
    }
}

impl OcrEngine for TesseractOcr {
    fn recognize(&self, image: &Image, options: &OcrOptions) -> Result<OcrResult, VisionError> {
        self.recognize_detailed(image, options).map(|(r, _)| r)
    }
}

/// Parses Tesseract's TSV output into words, lines and paragraphs. `map_box` turns a box
/// on the recognised image into input-image coordinates.
///
/// Columns: level, page, block, paragraph, line, word, left, top, width, height,
/// confidence, text. Only level-5 rows (words) with text are kept.
pub fn parse_tsv(tsv: &str, map_box: impl Fn(&BoundingBox) -> BoundingBox) -> OcrResult {
    let mut words = Vec::new();
    let mut lines: Vec<Vec<String>> = Vec::new();
    let mut line_par: Vec<usize> = Vec::new();
    let mut last_line_key = None;
    let mut last_par_key = None;
    let mut paragraph = 0usize;
    for row in tsv.lines() {
        let cols: Vec<&str> = row.splitn(12, '\t').collect();
        if cols.len() < 12 || cols[0] != "5" {
            continue;
        }
        let text = cols[11].trim();
        if text.is_empty() {
            continue;
        }
        let num = |i: usize| cols[i].trim().parse::<i64>().unwrap_or(0);
        let conf = cols[10].trim().parse::<f32>().unwrap_or(-1.0);
        if conf < 0.0 {
            continue;
        }
        let par_key = (num(1), num(2), num(3));
        let line_key = (num(1), num(2), num(3), num(4));
        if last_par_key != Some(par_key) {
            if last_par_key.is_some() {
                paragraph += 1;
            }
            last_par_key = Some(par_key);
        }
        if last_line_key != Some(line_key) {
            lines.push(Vec::new());
            line_par.push(paragraph);
            last_line_key = Some(line_key);
        }
        let raw = BoundingBox {
            x: num(6).clamp(0, i64::from(i32::MAX)) as i32,
            y: num(7).clamp(0, i64::from(i32::MAX)) as i32,
            width: num(8).clamp(0, i64::from(u32::MAX)) as u32,
            height: num(9).clamp(0, i64::from(u32::MAX)) as u32,
        };
        let line = lines.len() - 1;
        lines[line].push(text.to_owned());
        words.push(OcrWord {
            text: text.to_owned(),
            bbox: map_box(&raw),
            confidence: (conf / 100.0).clamp(0.0, 1.0),
            line,
            paragraph,
        });
    }
    let lines: Vec<String> = lines.into_iter().map(|l| l.join(" ")).collect();
    let mut text = String::new();
    for (i, l) in lines.iter().enumerate() {
        if i > 0 {
            text.push_str(if line_par[i] != line_par[i - 1] {
                "\n\n"
            } else {
                "\n"
            });
        }
        text.push_str(l);
    }
    OcrResult { words, lines, text }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TSV: &str = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext
1\t1\t0\t0\t0\t0\t0\t0\t200\t100\t-1\t
5\t1\t1\t1\t1\t1\t10\t10\t40\t12\t96.5\tHello
5\t1\t1\t1\t1\t2\t55\t10\t50\t12\t91\tworld
5\t1\t1\t1\t2\t1\t10\t30\t30\t12\t88\tagain
5\t1\t2\t1\t1\t1\t10\t60\t30\t12\t70\tNext
5\t1\t2\t1\t1\t2\t50\t60\t30\t12\t-1\t 
";

    #[test]
    fn tsv_is_grouped_into_lines_and_paragraphs() {
        let r = parse_tsv(TSV, |b| *b);
        assert_eq!(r.lines, vec!["Hello world", "again", "Next"]);
        assert_eq!(r.text, "Hello world\nagain\n\nNext");
        assert_eq!(r.words.len(), 4);
        assert_eq!(r.words[2].line, 1);
        assert_eq!(r.words[3].paragraph, 1);
        assert!((r.words[0].confidence - 0.965).abs() < 1e-6);
        assert_eq!(
            r.words[1].bbox,
            BoundingBox {
                x: 55,
                y: 10,
                width: 50,
                height: 12
            }
        );
    }

    /// A white `w` × `h` image with a line of "text" (alternating dark and light pixels)
    /// on each of `rows` (8 rows tall each).
    fn page(w: usize, h: usize, rows: &[usize]) -> Vec<u8> {
        let mut data = vec![255u8; w * h];
        for &top in rows {
            for y in top..top + 8 {
                for x in (0..w).step_by(4) {
                    data[y * w + x] = 0;
                }
            }
        }
        data
    }

    #[test]
    fn bands_split_the_text_evenly_through_blank_rows() {
        let lines: Vec<usize> = (0..20).map(|i| 10 + i * 20).collect();
        let data = page(100, 420, &lines);
        let bands = ink_bands(&data, 100, 420, 2);
        assert_eq!(bands.len(), 2, "{bands:?}");
        assert_eq!((bands[0].0, bands[1].1), (0, 420));
        assert_eq!(bands[0].1, bands[1].0);
        let cut = bands[0].1;
        assert!(
            lines.iter().all(|&l| cut <= l || cut >= l + 8),
            "cut {cut} splits a line"
        );
        assert!(
            (190..=230).contains(&cut),
            "cut {cut} is not near the middle of the text"
        );
    }

    #[test]
    fn a_solid_bar_does_not_count_as_text_and_small_images_stay_whole() {
        // A dark bar over the top third and text below: the cut falls inside the text.
        let lines: Vec<usize> = (0..10).map(|i| 210 + i * 20).collect();
        let mut data = page(100, 420, &lines);
        data[..100 * 140].fill(0);
        let bands = ink_bands(&data, 100, 420, 2);
        assert_eq!(bands.len(), 2, "{bands:?}");
        assert!(bands[0].1 > 250, "{bands:?}");
        assert_eq!(
            ink_bands(&page(100, 150, &[10, 60, 110]), 100, 150, 4),
            [(0, 150)]
        );
        assert_eq!(ink_bands(&vec![255; 100 * 400], 100, 400, 4), [(0, 400)]);
    }

    #[test]
    fn band_rows_are_moved_down_and_their_blocks_kept_apart() {
        let mut out = String::new();
        shift_tsv(TSV, 1, 500, &mut out);
        let hello = out.lines().find(|l| l.ends_with("Hello")).unwrap();
        let cols: Vec<&str> = hello.split('\t').collect();
        assert_eq!((cols[2], cols[7]), ("100001", "510"));
        assert!(!out.contains("level"));
        let mut both = String::new();
        shift_tsv(TSV, 0, 0, &mut both);
        shift_tsv(TSV, 1, 500, &mut both);
        let parsed = parse_tsv(&both, |b| *b);
        assert_eq!(parsed.words.len(), 8);
        assert_eq!(parsed.words[4].bbox.y, 510);
        assert!(
            parsed.text.contains("Next\n\nHello world"),
            "{}",
            parsed.text
        );
    }

    #[test]
    fn boxes_are_mapped() {
        let r = parse_tsv(TSV, |b| BoundingBox { x: b.x / 2, ..*b });
        assert_eq!(r.words[1].bbox.x, 27);
    }
}
