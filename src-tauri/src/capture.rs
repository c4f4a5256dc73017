//! "OCR a region": the screen is captured first, then shown in a full-screen frameless
//! window where the person drags a rectangle (no transparent overlays, which are fragile
//! on Linux compositors). The selection, in pixels of the captured image, is cropped, read
//! (`baton_vision::analyze`), stored with its image and shown in the chat window.

use crate::dto::{AppAction, AppError, CaptureInfo, CaptureSummaryInfo, PendingCapture};
use crate::state::AppState;
use base64::Engine as _;
use baton_store::NewCapture;
use baton_vision::{Image, OcrOptions};
use std::sync::Arc;
use std::time::Duration;
use tauri::{AppHandle, Manager, State, WebviewUrl, WebviewWindowBuilder};
use tauri_specta::Event;

/// The label of the region selection window.
pub const SELECT: &str = "capture";

/// A screenshot waiting for its region to be selected.
pub struct PendingShot {
    image: Arc<Image>,
    png: Vec<u8>,
    main_was_visible: bool,
}

type Res<T> = Result<T, AppError>;

fn vision_error(e: impl std::fmt::Display) -> AppError {
    AppError::new("capture", e.to_string())
}

/// Starts "OCR a region" (tray item, shortcut, `--action ocr-region`, the UI's button).
/// Failures reach the chat window as an error it shows.
pub fn begin(app: &AppHandle) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        if let Err(e) = open_selection(&app).await {
            tracing::warn!(error = %e.message, "region capture failed");
            crate::shell::show(&app);
            let _ = AppAction::CaptureFailed { message: e.message }.emit(&app);
        }
    });
}

/// Which monitor to capture: the one under the mouse pointer, else the primary one.
fn monitor_index(app: &AppHandle, monitors: &[baton_vision::MonitorInfo]) -> usize {
    let cursor = app.cursor_position().ok();
    cursor
        .and_then(|c| {
            monitors.iter().position(|m| {
                c.x >= f64::from(m.x)
                    && c.y >= f64::from(m.y)
                    && c.x < f64::from(m.x) + f64::from(m.width)
                    && c.y < f64::from(m.y) + f64::from(m.height)
            })
        })
        .or_else(|| monitors.iter().position(|m| m.primary))
        .unwrap_or(0)
}

async fn open_selection(app: &AppHandle) -> Res<()> {
    if let Some(existing) = app.get_webview_window(SELECT) {
        let _ = existing.set_focus();
        return Ok(());
    }
    let main = app.get_webview_window(crate::shell::MAIN);
    let main_was_visible = main
        .as_ref()
        .and_then(|w| w.is_visible().ok())
        .unwrap_or(false);
    // The chat window is not part of what the person wants to read.
    if let Some(w) = &main {
        let _ = w.hide();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let monitors = baton_vision::list_monitors().map_err(vision_error)?;
    if monitors.is_empty() {
        return Err(AppError::new(
            "capture",
            "no monitor was found to capture; OCR a region needs a graphical session",
        ));
    }
    let index = monitor_index(app, &monitors);
    let monitor = monitors[index].clone();
    let (image, png) = tauri::async_runtime::spawn_blocking(move || {
        let image = baton_vision::capture_monitor(index)?;
        let png = baton_vision::encode_png(&image)?;
        Ok::<_, baton_core::VisionError>((image, png))
    })
    .await
    .map_err(vision_error)?
    .map_err(vision_error)?;
    tracing::info!(
        monitor = %monitor.name,
        width = image.width,
        height = image.height,
        "screen captured for a region selection"
    );
    *app.state::<AppState>().pending_shot() = Some(PendingShot {
        image: Arc::new(image),
        png,
        main_was_visible,
    });
    let scale = f64::from(monitor.scale_factor.max(0.1));
    WebviewWindowBuilder::new(
        app,
        SELECT,
        WebviewUrl::App("index.html?view=select".into()),
    )
    .title("Baton — select a region to read")
    .decorations(false)
    .always_on_top(true)
    .skip_taskbar(true)
    .resizable(false)
    .position(f64::from(monitor.x) / scale, f64::from(monitor.y) / scale)
    .inner_size(
        f64::from(monitor.width) / scale,
        f64::from(monitor.height) / scale,
    )
    .fullscreen(true)
    .focused(true)
    // Shown by the page once the screenshot is drawn (`show_selection`): no blank flash.
    .visible(false)
    .build()
    .map_err(|e| AppError::new("capture", format!("cannot open the selection window: {e}")))?;
    // A page that never says it is ready must not leave an invisible window holding the
    // screen: show it anyway after a while.
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        tokio::time::sleep(SHOW_SELECTION_AT_LATEST).await;
        if let Some(w) = app.get_webview_window(SELECT) {
            if !w.is_visible().unwrap_or(true) {
                tracing::warn!("the selection page did not report ready; showing its window");
                show_selection(app.clone());
            }
        }
    });
    Ok(())
}

/// The longest the selection window stays hidden while its page draws the screenshot.
const SHOW_SELECTION_AT_LATEST: Duration = Duration::from_secs(5);

/// The selection page has drawn the screenshot (or an error): show its window.
#[tauri::command]
#[specta::specta]
pub fn show_selection(app: AppHandle) {
    if let Some(w) = app.get_webview_window(SELECT) {
        let _ = w.show();
        let _ = w.set_focus();
    }
}

fn data_url(png: &[u8]) -> String {
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

/// Closes the selection window and brings the chat window back if it was showing.
fn end_selection(app: &AppHandle, show_main: bool) {
    if let Some(w) = app.get_webview_window(SELECT) {
        let _ = w.destroy();
    }
    if show_main {
        crate::shell::show(app);
    }
}

/// The selection window went away without a selection (closed by the window manager):
/// forget the screenshot and bring the chat window back if it was showing.
pub fn selection_closed(app: &AppHandle) {
    let shot = app.state::<AppState>().pending_shot().take();
    if shot.is_some_and(|s| s.main_was_visible) {
        crate::shell::show(app);
    }
}

/// Starts "OCR a region" from the chat window's button.
#[tauri::command]
#[specta::specta]
pub fn start_capture(app: AppHandle) {
    begin(&app);
}

/// The screenshot to select from (the selection window asks for it when it loads).
#[tauri::command]
#[specta::specta]
pub fn pending_capture(state: State<'_, AppState>) -> Res<PendingCapture> {
    let pending = state.pending_shot();
    let shot = pending.as_ref().ok_or_else(|| {
        AppError::new(
            "capture",
            "there is no screenshot to select from; choose “OCR a region” again",
        )
    })?;
    Ok(PendingCapture {
        width: shot.image.width,
        height: shot.image.height,
        image: data_url(&shot.png),
    })
}

/// Closes the selection window without reading anything (Esc).
#[tauri::command]
#[specta::specta]
pub fn cancel_capture(app: AppHandle, state: State<'_, AppState>) {
    let shot = state.pending_shot().take();
    end_selection(&app, shot.is_some_and(|s| s.main_was_visible));
}

/// Reads the selected rectangle (pixels of the screenshot), stores the capture and shows
/// it in the chat window.
#[tauri::command]
#[specta::specta]
pub async fn finish_capture(
    app: AppHandle,
    state: State<'_, AppState>,
    x: u32,
    y: u32,
    width: u32,
    height: u32,
) -> Res<CaptureInfo> {
    let rt = state.runtime()?;
    let shot = state.pending_shot().take().ok_or_else(|| {
        AppError::new(
            "capture",
            "the screenshot is gone; choose “OCR a region” again",
        )
    })?;
    end_selection(&app, true);
    let dir = state.paths().data_dir.join("captures");
    let image = shot.image.clone();
    let work = tauri::async_runtime::spawn_blocking(move || {
        let crop = baton_vision::crop(&image, x, y, width, height)?;
        let analysis = baton_vision::analyze(&crop, &OcrOptions::default())?;
        std::fs::create_dir_all(&dir).map_err(|e| {
            baton_core::VisionError::Failed(format!("cannot create {}: {e}", dir.display()))
        })?;
        let name = format!(
            "capture-{}.png",
            chrono::Utc::now().format("%Y%m%d-%H%M%S%.3f")
        );
        let path = dir.join(name);
        baton_vision::save_png(&crop, &path)?;
        Ok::<_, baton_core::VisionError>((crop.width, crop.height, analysis, path))
    });
    let result = work.await.map_err(vision_error)?.map_err(vision_error);
    let (w, h, analysis, path) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = AppAction::CaptureFailed {
                message: e.message.clone(),
            }
            .emit(&app);
            return Err(e);
        }
    };
    let stored = rt
        .store()
        .add_capture(&NewCapture {
            source: "region".into(),
            width: w,
            height: h,
            image_path: Some(path.display().to_string()),
            text: analysis.ocr.text.clone(),
            words: serde_json::to_value(&analysis.ocr.words).unwrap_or_default(),
            elements: serde_json::to_value(&analysis.elements).unwrap_or_default(),
        })
        .await?;
    rt.memory_changed();
    tracing::info!(
        id = stored.id,
        words = analysis.ocr.words.len(),
        elements = analysis.elements.len(),
        "region read"
    );
    let _ = AppAction::ShowCapture {
        id: stored.id as f64,
    }
    .emit(&app);
    Ok(CaptureInfo::from_store(stored))
}

/// Stored captures, newest first; with a query, those about it (memory search over
/// captures: their words and, with the embedding model, their meaning), best first.
#[tauri::command]
#[specta::specta]
pub async fn list_captures(
    state: State<'_, AppState>,
    query: Option<String>,
) -> Res<Vec<CaptureSummaryInfo>> {
    let rt = state.runtime()?;
    let Some(q) = query.as_deref().map(str::trim).filter(|q| !q.is_empty()) else {
        let list = rt.store().list_captures(200).await?;
        return Ok(list.into_iter().map(Into::into).collect());
    };
    let filter = baton_runtime::SearchFilter {
        kind: Some("capture".into()),
        ..Default::default()
    };
    let hits = rt
        .search_memory(q, baton_runtime::SearchMode::Hybrid, &filter, 100)
        .await?;
    let mut list = Vec::with_capacity(hits.len());
    for hit in hits {
        // A capture deleted since it was found is left out.
        if let Ok(c) = rt.store().capture(hit.ref_id).await {
            list.push(CaptureSummaryInfo {
                id: c.id as f64,
                width: c.width,
                height: c.height,
                excerpt: hit.text,
                created_at: c.created_at.to_rfc3339(),
            });
        }
    }
    Ok(list)
}

/// One capture with its image, words and elements.
#[tauri::command]
#[specta::specta]
pub async fn get_capture(state: State<'_, AppState>, id: f64) -> Res<CaptureInfo> {
    let rt = state.runtime()?;
    Ok(CaptureInfo::from_store(
        rt.store().capture(id as i64).await?,
    ))
}

/// Deletes a capture and its image file.
#[tauri::command]
#[specta::specta]
pub async fn delete_capture(state: State<'_, AppState>, id: f64) -> Res<()> {
    let rt = state.runtime()?;
    let capture = rt.store().capture(id as i64).await?;
    rt.store().delete_capture(capture.id).await?;
    if let Some(path) = capture.image_path {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

impl CaptureInfo {
    /// The stored capture with its image file read into a data URL (absent when gone).
    fn from_store(c: baton_store::Capture) -> Self {
        let image = c
            .image_path
            .as_deref()
            .and_then(|p| std::fs::read(p).ok())
            .map(|png| data_url(&png));
        let (words, elements) = crate::dto::capture_boxes(c.words, c.elements);
        Self {
            id: c.id as f64,
            source: c.source,
            width: c.width,
            height: c.height,
            text: c.text,
            words,
            elements,
            created_at: c.created_at.to_rfc3339(),
            image,
        }
    }
}
