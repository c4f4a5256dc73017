//! Screen capture under a private Xvfb server: list monitors, capture a monitor and a
//! region and a window, and read text from what was captured. Skipped, with a message, only when
//! `Xvfb` is not installed. (One test: it sets `DISPLAY` for this process.)

use baton_vision::metrics::{character_error_rate, score_detections, TruthElement};
use baton_vision::{
    capture_monitor, capture_region, capture_window, list_monitors, list_windows, BoundingBox,
    OcrEngine, OcrOptions, Region, TesseractOcr,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Xvfb(Child);

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_xvfb() -> Option<(Xvfb, u32)> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("Xvfb").is_file()))
        .unwrap_or(false);
    if !found {
        eprintln!("SKIPPED: Xvfb is not installed (sudo apt-get install xvfb)");
        return None;
    }
    let n = (90..200).find(|n| {
        !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
            && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
    })?;
    let child = Command::new("Xvfb")
        .args([
            format!(":{n}"),
            "-screen".into(),
            "0".into(),
            "1280x720x24".into(),
            "-nolisten".into(),
            "tcp".into(),
            "-noreset".into(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start Xvfb");
    let guard = Xvfb(child);
    let socket = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
    let t = Instant::now();
    while !socket.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "Xvfb :{n} did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some((guard, n))
}

#[test]
fn captures_monitors_and_regions_under_xvfb() {
    let Some((_xvfb, n)) = start_xvfb() else {
        return;
    };
    std::env::set_var("DISPLAY", format!(":{n}"));
    std::env::remove_var("WAYLAND_DISPLAY");
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ocr_plain.png");
    // Tile the text image over the root window (ImageMagick `display` sets the root
    // background; it exits non-zero without a window manager, which is fine; `-noreset`
    // keeps the server from clearing it when `display` disconnects).
    let shown = Command::new("display")
        .args(["-window", "root"])
        .arg(&fixture)
        .env("DISPLAY", format!(":{n}"))
        .status();
    if shown.is_err() {
        eprintln!("note: ImageMagick `display` missing; capturing a blank screen");
    }

    let monitors = list_monitors().unwrap();
    assert_eq!(monitors.len(), 1, "{monitors:?}");
    assert_eq!((monitors[0].width, monitors[0].height), (1280, 720));
    let full = capture_monitor(0).unwrap();
    assert_eq!(
        (full.width, full.height, full.rgba.len()),
        (1280, 720, 1280 * 720 * 4)
    );
    assert!(capture_monitor(3)
        .unwrap_err()
        .to_string()
        .contains("no monitor #3"));

    let e = capture_region(Region {
        x: 5000,
        y: 0,
        width: 10,
        height: 10,
    })
    .unwrap_err();
    assert!(e.to_string().contains("outside every monitor"), "{e}");

    if shown.is_ok() {
        // The first tile is the fixture itself, at (0, 0).
        let (w, h) = image::image_dimensions(&fixture).unwrap();
        let region = capture_region(Region {
            x: 0,
            y: 0,
            width: w,
            height: h,
        })
        .unwrap();
        assert_eq!((region.width, region.height), (w, h));
        let ocr = TesseractOcr::new()
            .unwrap()
            .recognize(&region, &OcrOptions::default())
            .unwrap();
        let truth = std::fs::read_to_string(fixture.with_extension("txt")).unwrap();
        let cer = character_error_rate(&ocr.text, &truth);
        eprintln!("captured region CER {:.2}%", cer * 100.0);
        assert!(cer <= 0.02, "{}", ocr.text);
    }

    // A window: ImageMagick's `display` shows the small-text fixture in one. Listing
    // windows needs an EWMH window manager.
    let wm = Command::new("openbox")
        .env("DISPLAY", format!(":{n}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(wm) = wm else {
        eprintln!("SKIPPED window capture: no window manager (sudo apt-get install openbox)");
        return;
    };
    let _wm = Xvfb(wm);
    let t = Instant::now();
    while list_windows().is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "openbox did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    if shown.is_ok() {
        let small = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ocr_small.png");
        let child = Command::new("display")
            .args(["-title", "baton-capture-test", "-geometry", "+40+50"])
            .arg(&small)
            .env("DISPLAY", format!(":{n}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let _window = Xvfb(child); // killed on drop, like the server
        let t = Instant::now();
        let win = loop {
            if let Some(w) = list_windows()
                .unwrap()
                .into_iter()
                .find(|w| w.app_name.starts_with("Display"))
            {
                break w;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "the test window did not appear: {:?}",
                list_windows()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let (w, h) = image::image_dimensions(&small).unwrap();
        eprintln!("window {win:?}");
        // `display` may not have painted yet: retry for a moment.
        let ocr = TesseractOcr::new().unwrap();
        let truth = std::fs::read_to_string(small.with_extension("txt")).unwrap();
        let mut cer = 1.0;
        let painting = Instant::now();
        while painting.elapsed() < Duration::from_secs(60) {
            let shot = capture_window(win.id).unwrap();
            assert!(
                shot.width >= w && shot.height >= h,
                "{}x{}",
                shot.width,
                shot.height
            );
            cer = character_error_rate(
                &ocr.recognize(&shot, &OcrOptions::default()).unwrap().text,
                &truth,
            );
            if cer <= 0.04 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("captured window CER {:.2}%", cer * 100.0);
        assert!(cer <= 0.04);
        assert!(capture_window(u32::MAX)
            .unwrap_err()
            .to_string()
            .contains("no window"));
    }
    elements_on_a_real_gtk_form(n);
}

/// A real GTK 3 form (`fixtures/gtk_form.py` prints where its widgets are), captured with
/// xcap: the detector must find its fields, check boxes, buttons and labels.
fn elements_on_a_real_gtk_form(n: u32) {
    use std::io::BufRead;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gtk_form.py");
    let gi = Command::new("/usr/bin/python3")
        .args(["-c", "import gi; gi.require_version('Gtk', '3.0')"])
        .status();
    if !gi.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED the GTK form: Debian's python3-gi and gir1.2-gtk-3.0 are missing");
        return;
    }
    let mut child = Command::new("/usr/bin/python3")
        .arg(&script)
        .env("DISPLAY", format!(":{n}"))
        .env("GTK_THEME", "Adwaita")
        .env("NO_AT_BRIDGE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _form = Xvfb(child); // killed on drop
    let widgets: Vec<serde_json::Value> = serde_json::from_str(&line).unwrap();
    let truth: Vec<TruthElement> = widgets
        .iter()
        .map(|w| TruthElement {
            kind: serde_json::from_value(w["kind"].clone()).unwrap(),
            bbox: BoundingBox {
                x: w["x"].as_i64().unwrap() as i32,
                y: w["y"].as_i64().unwrap() as i32,
                width: w["width"].as_u64().unwrap() as u32,
                height: w["height"].as_u64().unwrap() as u32,
            },
        })
        .collect();
    let win = list_windows()
        .unwrap()
        .into_iter()
        .find(|w| w.title == "Baton GTK form")
        .expect("the GTK form window");
    let shot = capture_window(win.id).unwrap();
    let found = baton_vision::analyze(&shot, &OcrOptions::default())
        .unwrap()
        .elements;
    let score = score_detections(&found, &truth, 0.5);
    eprintln!(
        "GTK form: precision {:.3} recall {:.3} ({} of {} found, {} detections)",
        score.precision, score.recall, score.true_positives, score.truths, score.detections
    );
    assert!(
        score.precision >= 0.9 && score.recall >= 0.9,
        "{score:?}\nfound {found:#?}\ntruth {truth:#?}"
    );
}
