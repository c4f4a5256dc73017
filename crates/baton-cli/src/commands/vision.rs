//! `baton ocr`, `baton elements` and `baton bench ocr`: screen and image text recognition
//! and UI-element detection. The vision engines run in-process (see baton-vision).

use crate::commands::print_json;
use anyhow::{bail, Context};
use baton_vision::metrics::character_error_rate;
use baton_vision::{
    capture_monitor, capture_region, load_image, ElementDetector, HeuristicDetector, Image, Layout,
    Limits, OcrEngine, OcrOptions, OnnxDetector, Region, TesseractOcr,
};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the image comes from.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// Image file (PNG, JPEG, BMP, WebP, GIF, TIFF, PNM)
    #[arg(required_unless_present_any = ["screen", "region"], conflicts_with_all = ["screen", "region"])]
    pub image: Option<PathBuf>,
    /// Capture monitor N (numbered from 0) instead of reading a file
    #[arg(long, value_name = "N", conflicts_with = "region")]
    pub screen: Option<usize>,
    /// Capture the region X,Y,W,H (physical screen pixels, across monitors)
    #[arg(long, value_name = "X,Y,W,H", allow_hyphen_values = true)]
    pub region: Option<String>,
    /// Tesseract languages, `+`-separated or repeated (e.g. `eng+deu`)
    #[arg(long, default_value = "eng", value_delimiter = '+')]
    pub lang: Vec<String>,
}

/// Page layout for OCR.
#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum LayoutArg {
    /// Columns, paragraphs and lines (documents)
    #[default]
    Auto,
    /// As much text as possible, no order (UI screenshots)
    Sparse,
    /// One block of text
    Block,
    /// One line of text
    Line,
}

impl From<LayoutArg> for Layout {
    fn from(l: LayoutArg) -> Self {
        match l {
            LayoutArg::Auto => Layout::Auto,
            LayoutArg::Sparse => Layout::Sparse,
            LayoutArg::Block => Layout::SingleBlock,
            LayoutArg::Line => Layout::SingleLine,
        }
    }
}

/// Arguments of `baton ocr`.
#[derive(Debug, Args)]
pub struct OcrArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Page layout
    #[arg(long, value_enum, default_value_t = LayoutArg::Auto)]
    pub layout: LayoutArg,
}

/// Arguments of `baton elements`.
#[derive(Debug, Args)]
pub struct ElementsArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Use this YOLO-style ONNX detector instead of the built-in one
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
}

/// Arguments of `baton bench ocr`.
#[derive(Debug, Args)]
pub struct BenchOcrArgs {
    /// Benchmark this image instead of a rendered 1920x1080 screenshot (no error rate then)
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// Timed runs (the median is reported)
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// Do not capture the screen even when a display exists
    #[arg(long)]
    pub no_capture: bool,
}

/// Re-executes `baton` with `OMP_THREAD_LIMIT=1` unless the variable is set: Tesseract's
/// OpenMP runtime reads it only at load time, and its spinning threads made OCR 8x slower
/// on a busy machine (see `baton_vision::ocr::openmp_limit_set`). Returns only when the
/// variable is already set or the re-execution failed (then OCR just runs slower).
fn single_threaded_openmp() {
    if let Some(err) = baton_vision::ocr::reexec_with_single_threaded_openmp() {
        tracing::warn!(error = %err, "could not re-execute with OMP_THREAD_LIMIT=1; OCR may be slow");
    }
}

fn acquire(source: &SourceArgs) -> anyhow::Result<(Image, String)> {
    if let Some(n) = source.screen {
        let img = capture_monitor(n)?;
        return Ok((img, format!("screen {n}")));
    }
    if let Some(r) = &source.region {
        let region: Region = r.parse()?;
        let img = capture_region(region)?;
        return Ok((img, format!("region {r}")));
    }
    let path = source
        .image
        .as_deref()
        .context("give an image file, --screen N or --region X,Y,W,H")?;
    Ok((
        load_image(path, &Limits::default())?,
        path.display().to_string(),
    ))
}

fn options(source: &SourceArgs) -> OcrOptions {
    OcrOptions {
        languages: source
            .lang
            .iter()
            .filter(|l| !l.is_empty())
            .cloned()
            .collect(),
    }
}

/// `baton ocr`.
pub fn ocr(args: OcrArgs, json: bool) -> anyhow::Result<()> {
    single_threaded_openmp();
    let (image, source) = acquire(&args.source)?;
    let engine = TesseractOcr::new()?.with_layout(args.layout.into());
    let started = Instant::now();
    let (result, pre) = engine.recognize_detailed(&image, &options(&args.source))?;
    let elapsed = started.elapsed();
    if json {
        print_json(&serde_json::json!({
            "source": source,
            "width": image.width,
            "height": image.height,
            "text": result.text,
            "lines": result.lines,
            "words": result.words,
            "preprocess": pre.summary(),
            "elapsed_ms": elapsed.as_secs_f64() * 1000.0,
        }))
    } else {
        if result.text.is_empty() {
            eprintln!("no text found in {source}");
        } else {
            println!("{}", result.text);
        }
        Ok(())
    }
}

/// The default element detector: page OCR in sparse mode plus line OCR of crops.
fn default_detector(langs: &OcrOptions) -> anyhow::Result<HeuristicDetector> {
    let line = Arc::new(TesseractOcr::new()?.with_layout(Layout::SingleLine));
    Ok(HeuristicDetector::with_crop_ocr(line, langs.clone()))
}

/// `baton elements`.
pub fn elements(args: ElementsArgs, json: bool) -> anyhow::Result<()> {
    single_threaded_openmp();
    let (image, source) = acquire(&args.source)?;
    let opts = options(&args.source);
    let page_ocr = TesseractOcr::new()?.with_layout(Layout::Sparse);
    let words = page_ocr.recognize(&image, &opts)?;
    let found = match &args.model {
        Some(model) => OnnxDetector::load(model)?.detect(&image, Some(&words))?,
        None => default_detector(&opts)?.detect(&image, Some(&words))?,
    };
    if json {
        return print_json(&found);
    }
    if found.is_empty() {
        eprintln!("no UI elements found in {source}");
    }
    for e in &found {
        let kind = serde_json::to_value(e.kind)?
            .as_str()
            .unwrap_or_default()
            .to_owned();
        println!(
            "{kind:<12} {:>5},{:<5} {:>5}x{:<5} {:.2}  {}",
            e.bbox.x,
            e.bbox.y,
            e.bbox.width,
            e.bbox.height,
            e.confidence,
            e.text.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

/// Text of the rendered benchmark screenshot, top to bottom.
const BENCH_DARK: &[&str] = &[
    "Baton  File  Edit  View  Models  Tasks  Help",
    "Session: quarterly report draft (SmolLM2 135M, local, 8192 tokens)",
];
const BENCH_BODY: &[&str] = &[
    "The quarterly report shows revenue of $4.2 million, up 12% from the previous quarter.",
    "Operating costs fell to $1.9 million after the move to local inference on 14 machines.",
    "Customer tickets dropped from 1,240 to 860 while the median answer time was 41 seconds.",
    "Next steps: migrate the remaining 3 teams, retire the cloud endpoint, and review pricing.",
    "The board meets on Thursday, June 12 at 10:30 to approve the budget for the next year.",
    "Please send comments on sections 2 and 4 to the finance team before Wednesday evening.",
];
const BENCH_SMALL: &[&str] = &[
    "Status: 3 tasks queued, 1 running, GPU not found, using 2 CPU threads, memory 1.2 GB of 24 GB",
    "Last saved 2 minutes ago. Press Ctrl+Shift+O to read a screen region, Ctrl+K to open commands.",
];

fn convert(args: &[String]) -> anyhow::Result<()> {
    let out = std::process::Command::new("convert")
        .args(args)
        .output()
        .context("ImageMagick `convert` is needed to render the benchmark screenshot (sudo apt-get install imagemagick fonts-dejavu-core), or pass --image")?;
    if !out.status.success() {
        bail!(
            "ImageMagick failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Renders a 1920x1080 screenshot-like image with known text; returns the text.
fn render_bench_screenshot(path: &Path) -> anyhow::Result<String> {
    let dir = path.parent().context("bad path")?;
    let band =
        |name: &str, lines: &[&str], size: u32, fg: &str, bg: &str| -> anyhow::Result<String> {
            let p = dir.join(name).display().to_string();
            convert(&[
                "-background".into(),
                bg.into(),
                "-fill".into(),
                fg.into(),
                "-font".into(),
                "DejaVu-Sans".into(),
                "-pointsize".into(),
                size.to_string(),
                "-density".into(),
                "72".into(),
                format!("label:{}", lines.join("\n")),
                "-bordercolor".into(),
                bg.into(),
                "-border".into(),
                "24x18".into(),
                "-gravity".into(),
                "west".into(),
                "-extent".into(),
                "1920x0".into(),
                p.clone(),
            ])?;
            Ok(p)
        };
    let a = band("a.png", BENCH_DARK, 15, "#e8eaed", "#202124")?;
    let b = band("b.png", BENCH_BODY, 17, "#1b1b1b", "white")?;
    let c = band("c.png", BENCH_SMALL, 11, "#444444", "#f0f0f0")?;
    convert(&[
        a,
        b,
        c,
        "-background".into(),
        "white".into(),
        "-append".into(),
        "-gravity".into(),
        "north".into(),
        "-extent".into(),
        "1920x1080".into(),
        "-alpha".into(),
        "off".into(),
        path.display().to_string(),
    ])?;
    let truth: Vec<&str> = BENCH_DARK
        .iter()
        .chain(BENCH_BODY)
        .chain(BENCH_SMALL)
        .copied()
        .collect();
    Ok(truth.join("\n"))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `baton bench ocr`.
pub fn bench(args: BenchOcrArgs, json: bool) -> anyhow::Result<()> {
    single_threaded_openmp();
    let runs = args.runs.max(1);
    let tmp = std::env::temp_dir().join(format!("baton-bench-ocr-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let result = bench_in(&args, runs, &tmp, json);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn bench_in(args: &BenchOcrArgs, runs: u32, tmp: &Path, json: bool) -> anyhow::Result<()> {
    let (path, truth, source) = match &args.image {
        Some(p) => (p.clone(), None, p.display().to_string()),
        None => {
            let p = tmp.join("screen.png");
            let truth = render_bench_screenshot(&p)?;
            (p, Some(truth), "rendered 1920x1080 screenshot".to_owned())
        }
    };
    let image = load_image(&path, &Limits::default())?;
    let opts = OcrOptions::default();
    let engine = TesseractOcr::new()?;
    let sparse = TesseractOcr::new()?.with_layout(Layout::Sparse);
    let detector = default_detector(&opts)?;
    // Warm up (loads the language model once).
    engine.recognize(&image, &opts)?;
    sparse.recognize(&image, &opts)?;

    let (mut t_ocr, mut t_det, mut t_pre) = (Vec::new(), Vec::new(), Vec::new());
    let mut text = String::new();
    let mut n_elements = 0;
    for _ in 0..runs {
        let t = Instant::now();
        baton_vision::preprocess(&image, &Default::default())?;
        t_pre.push(t.elapsed());
        let t = Instant::now();
        text = engine.recognize(&image, &opts)?.text;
        t_ocr.push(t.elapsed());
        let t = Instant::now();
        let words = sparse.recognize(&image, &opts)?;
        n_elements = detector.detect(&image, Some(&words))?.len();
        t_det.push(t.elapsed());
    }

    // Screen capture, where a display exists.
    let mut capture = serde_json::Value::Null;
    if !args.no_capture && std::env::var_os("DISPLAY").is_some() {
        match capture_monitor(0) {
            Ok(shot) => {
                let mut times = Vec::new();
                for _ in 0..runs {
                    let t = Instant::now();
                    capture_monitor(0)?;
                    times.push(t.elapsed());
                }
                let t = Instant::now();
                let words = engine.recognize(&shot, &opts)?;
                let ocr_t = t.elapsed();
                let t = Instant::now();
                let found = detector.detect(&shot, Some(&words))?;
                capture = serde_json::json!({
                    "width": shot.width, "height": shot.height,
                    "capture_ms": ms(median(times)), "ocr_ms": ms(ocr_t),
                    "detect_ms": ms(t.elapsed()), "elements": found.len(),
                });
            }
            Err(e) => capture = serde_json::json!({ "error": e.to_string() }),
        }
    }

    // The plain tesseract CLI on the same image.
    let mut cli_times = Vec::new();
    let mut cli_text = None;
    for _ in 0..runs {
        let t = Instant::now();
        let mut cmd = std::process::Command::new("tesseract");
        cmd.arg(&path).arg("stdout").args(["-l", "eng"]);
        match cmd.output() {
            Ok(out) if out.status.success() => {
                cli_times.push(t.elapsed());
                cli_text = Some(String::from_utf8_lossy(&out.stdout).into_owned());
            }
            Ok(out) => bail!(
                "the tesseract CLI failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(_) => break,
        }
    }
    let ours_cer = truth.as_deref().map(|t| character_error_rate(&text, t));
    let cli_cer = match (&truth, &cli_text) {
        (Some(t), Some(c)) => Some(character_error_rate(c, t)),
        _ => None,
    };
    let report = serde_json::json!({
        "source": source,
        "width": image.width,
        "height": image.height,
        "runs": runs,
        "baton": {
            "preprocess_ms": ms(median(t_pre.clone())),
            "preprocess_and_ocr_ms": ms(median(t_ocr.clone())),
            "detect_elements_ms": ms(median(t_det.clone())),
            "total_ms": ms(median(t_ocr)) + ms(median(t_det)),
            "cer": ours_cer,
            "elements": n_elements,
        },
        "tesseract_cli": if cli_text.is_some() {
            serde_json::json!({ "ms": ms(median(cli_times)), "cer": cli_cer })
        } else {
            serde_json::json!({ "error": "`tesseract` not found (sudo apt-get install tesseract-ocr)" })
        },
        "capture": capture,
    });
    let mut report = report;
    if let Some(cli) = report["tesseract_cli"]["ms"].as_f64() {
        let ours = report["baton"]["preprocess_and_ocr_ms"]
            .as_f64()
            .unwrap_or(0.0);
        report["baton_over_cli"] = serde_json::json!(ours / cli);
    }
    if json {
        return print_json(&report);
    }
    let pct = |v: Option<f64>| v.map_or("n/a".to_owned(), |c| format!("{:.2}%", c * 100.0));
    println!(
        "image: {source} ({}x{}), median of {runs} runs; Tesseract OpenMP threads: {}",
        image.width,
        image.height,
        std::env::var("OMP_THREAD_LIMIT").unwrap_or_else(|_| "default".into())
    );
    println!(
        "baton   preprocess        {:>8.1} ms",
        report["baton"]["preprocess_ms"].as_f64().unwrap_or(0.0)
    );
    println!(
        "baton   preprocess + OCR  {:>8.1} ms   CER {}",
        report["baton"]["preprocess_and_ocr_ms"]
            .as_f64()
            .unwrap_or(0.0),
        pct(ours_cer)
    );
    println!(
        "baton   elements          {:>8.1} ms   ({n_elements} elements; sparse OCR + detection)",
        report["baton"]["detect_elements_ms"]
            .as_f64()
            .unwrap_or(0.0)
    );
    match report["tesseract_cli"]["ms"].as_f64() {
        Some(t) => {
            println!(
                "tesseract CLI             {t:>8.1} ms   CER {}",
                pct(cli_cer)
            );
            println!(
                "baton / tesseract CLI     {:>8.3}      (OCR of the same image, lower is faster)",
                report["baton_over_cli"].as_f64().unwrap_or(f64::NAN)
            );
        }
        None => println!("tesseract CLI             not installed"),
    }
    if let Some(c) = capture.get("capture_ms").and_then(|v| v.as_f64()) {
        println!(
            "screen  capture {}x{} {c:.1} ms, OCR {:.1} ms, elements {:.1} ms ({} found)",
            capture["width"],
            capture["height"],
            capture["ocr_ms"].as_f64().unwrap_or(0.0),
            capture["detect_ms"].as_f64().unwrap_or(0.0),
            capture["elements"]
        );
    } else if let Some(e) = capture.get("error") {
        println!("screen  capture failed: {e}");
    } else {
        println!("screen  no display: capture not measured");
    }
    Ok(())
}
