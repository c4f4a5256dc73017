//! Screen capture through `xcap`: whole monitors, regions in physical screen pixels, and
//! windows.
//!
//! xcap reports monitor geometry in logical pixels (divided by the scale factor) but
//! captures in physical pixels. Baton works in **physical pixels** everywhere: a region
//! `X,Y,W,H` is taken on the virtual screen whose monitors sit at their physical origins,
//! and a region that spans several monitors is stitched from each of them. The geometry
//! is pure ([`plan_region`]) so it is tested without a display.

use baton_core::{Image, VisionError};
use serde::Serialize;

/// A monitor as Baton sees it, in physical pixels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonitorInfo {
    /// Position in the list (what `--screen N` takes).
    pub index: usize,
    /// Name given by the system.
    pub name: String,
    /// Left edge on the virtual screen, physical pixels.
    pub x: i32,
    /// Top edge, physical pixels.
    pub y: i32,
    /// Width, physical pixels.
    pub width: u32,
    /// Height, physical pixels.
    pub height: u32,
    /// HiDPI scale factor (physical / logical).
    pub scale_factor: f32,
    /// Whether it is the primary monitor.
    pub primary: bool,
}

/// A rectangle on the virtual screen, physical pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Region {
    /// Left edge.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

impl std::str::FromStr for Region {
    type Err = VisionError;

    /// Parses `X,Y,W,H`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            VisionError::Capture(format!(
                "`{s}` is not a region; write X,Y,W,H in screen pixels, for example 100,200,640,480"
            ))
        };
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        if parts.len() != 4 {
            return Err(bad());
        }
        let x = parts[0].parse().map_err(|_| bad())?;
        let y = parts[1].parse().map_err(|_| bad())?;
        let width: u32 = parts[2].parse().map_err(|_| bad())?;
        let height: u32 = parts[3].parse().map_err(|_| bad())?;
        if width == 0 || height == 0 {
            return Err(VisionError::Capture(format!(
                "the region `{s}` is empty; width and height must be at least 1"
            )));
        }
        Ok(Region {
            x,
            y,
            width,
            height,
        })
    }
}

/// One piece of a region capture: copy `width`×`height` from monitor `monitor` at
/// (`src_x`, `src_y`) to (`dst_x`, `dst_y`) in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// Index into the monitor list.
    pub monitor: usize,
    /// Left edge in the monitor's image.
    pub src_x: u32,
    /// Top edge in the monitor's image.
    pub src_y: u32,
    /// Left edge in the output.
    pub dst_x: u32,
    /// Top edge in the output.
    pub dst_y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// Splits `region` into pieces per monitor. Fails when no monitor covers any of it.
pub fn plan_region(monitors: &[MonitorInfo], region: Region) -> Result<Vec<Piece>, VisionError> {
    let rx1 = i64::from(region.x) + i64::from(region.width);
    let ry1 = i64::from(region.y) + i64::from(region.height);
    let mut pieces = Vec::new();
    for (i, m) in monitors.iter().enumerate() {
        let mx1 = i64::from(m.x) + i64::from(m.width);
        let my1 = i64::from(m.y) + i64::from(m.height);
        let x0 = i64::from(region.x).max(i64::from(m.x));
        let y0 = i64::from(region.y).max(i64::from(m.y));
        let x1 = rx1.min(mx1);
        let y1 = ry1.min(my1);
        if x1 > x0 && y1 > y0 {
            pieces.push(Piece {
                monitor: i,
                src_x: (x0 - i64::from(m.x)) as u32,
                src_y: (y0 - i64::from(m.y)) as u32,
                dst_x: (x0 - i64::from(region.x)) as u32,
                dst_y: (y0 - i64::from(region.y)) as u32,
                width: (x1 - x0) as u32,
                height: (y1 - y0) as u32,
            });
        }
    }
    if pieces.is_empty() {
        let screens: Vec<String> = monitors
            .iter()
            .map(|m| format!("#{} {}x{}+{}+{}", m.index, m.width, m.height, m.x, m.y))
            .collect();
        return Err(VisionError::Capture(format!(
            "the region {}x{}+{}+{} is outside every monitor ({})",
            region.width,
            region.height,
            region.x,
            region.y,
            if screens.is_empty() {
                "none found".to_owned()
            } else {
                screens.join(", ")
            }
        )));
    }
    Ok(pieces)
}

/// Copies a `width`×`height` block between RGBA buffers.
pub fn blit(src: &Image, dst: &mut Image, piece: &Piece) {
    let (sw, dw) = (src.width as usize, dst.width as usize);
    for row in 0..piece.height as usize {
        let sy = piece.src_y as usize + row;
        let dy = piece.dst_y as usize + row;
        if sy >= src.height as usize || dy >= dst.height as usize {
            break;
        }
        let w = (piece.width as usize)
            .min(src.width as usize - piece.src_x as usize)
            .min(dst.width as usize - piece.dst_x as usize);
        let s = (sy * sw + piece.src_x as usize) * 4;
        let d = (dy * dw + piece.dst_x as usize) * 4;
        dst.rgba[d..d + w * 4].copy_from_slice(&src.rgba[s..s + w * 4]);
    }
}

fn xcap_err(what: &str) -> impl Fn(xcap::XCapError) -> VisionError + '_ {
    move |e| {
        VisionError::Capture(format!(
            "{what}: {e} (is a display available? Check $DISPLAY or $WAYLAND_DISPLAY)"
        ))
    }
}

fn monitors() -> Result<Vec<xcap::Monitor>, VisionError> {
    if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        return Err(VisionError::Capture(
            "no display: neither DISPLAY nor WAYLAND_DISPLAY is set; pass an image file instead"
                .into(),
        ));
    }
    xcap::Monitor::all().map_err(xcap_err("cannot list monitors"))
}

fn info(index: usize, m: &xcap::Monitor) -> Result<MonitorInfo, VisionError> {
    let e = xcap_err("cannot read monitor geometry");
    let scale = m.scale_factor().map_err(&e)?;
    let scale = if scale.is_finite() && scale > 0.0 {
        scale
    } else {
        1.0
    };
    let phys = |v: f32| (v * scale).round();
    Ok(MonitorInfo {
        index,
        name: m.name().unwrap_or_default(),
        x: phys(m.x().map_err(&e)? as f32) as i32,
        y: phys(m.y().map_err(&e)? as f32) as i32,
        width: phys(m.width().map_err(&e)? as f32) as u32,
        height: phys(m.height().map_err(&e)? as f32) as u32,
        scale_factor: scale,
        primary: m.is_primary().unwrap_or(false),
    })
}

/// Lists monitors in physical pixels.
pub fn list_monitors() -> Result<Vec<MonitorInfo>, VisionError> {
    monitors()?
        .iter()
        .enumerate()
        .map(|(i, m)| info(i, m))
        .collect()
}

fn grab(m: &xcap::Monitor) -> Result<Image, VisionError> {
    let img = m
        .capture_image()
        .map_err(xcap_err("cannot capture the monitor"))?;
    let image = Image {
        width: img.width(),
        height: img.height(),
        rgba: img.into_raw(),
    };
    image.validate()?;
    Ok(image)
}

/// Captures monitor `index` (see [`list_monitors`]) at its physical resolution.
pub fn capture_monitor(index: usize) -> Result<Image, VisionError> {
    let all = monitors()?;
    let m = all.get(index).ok_or_else(|| {
        VisionError::Capture(format!(
            "there is no monitor #{index}; {} found (numbered from 0)",
            all.len()
        ))
    })?;
    grab(m)
}

/// Captures `region` (physical pixels on the virtual screen), stitching across monitors.
/// Parts of the region outside every monitor are left black.
pub fn capture_region(region: Region) -> Result<Image, VisionError> {
    let limits = crate::load::Limits {
        min_side: 1,
        ..Default::default()
    };
    limits.check(region.width, region.height)?;
    let all = monitors()?;
    let infos: Vec<MonitorInfo> = all
        .iter()
        .enumerate()
        .map(|(i, m)| info(i, m))
        .collect::<Result<_, _>>()?;
    let pieces = plan_region(&infos, region)?;
    let mut out = Image {
        width: region.width,
        height: region.height,
        rgba: vec![0; region.width as usize * region.height as usize * 4],
    };
    for alpha in out.rgba.chunks_mut(4) {
        alpha[3] = 255;
    }
    for p in &pieces {
        let shot = grab(&all[p.monitor])?;
        blit(&shot, &mut out, p);
    }
    Ok(out)
}

/// A top-level window, as xcap reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowInfo {
    /// Window id (what [`capture_window`] takes).
    pub id: u32,
    /// Title.
    pub title: String,
    /// Application name.
    pub app_name: String,
    /// Left edge.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Whether it is minimised (then it cannot be captured).
    pub minimized: bool,
}

fn windows() -> Result<Vec<xcap::Window>, VisionError> {
    monitors()?;
    xcap::Window::all().map_err(|e| {
        VisionError::Capture(format!(
            "cannot list windows: {e} (window listing needs a window manager that supports EWMH)"
        ))
    })
}

/// Lists top-level windows.
pub fn list_windows() -> Result<Vec<WindowInfo>, VisionError> {
    let e = xcap_err("cannot read window geometry");
    windows()?
        .iter()
        .map(|w| {
            Ok(WindowInfo {
                id: w.id().map_err(&e)?,
                title: w.title().unwrap_or_default(),
                app_name: w.app_name().unwrap_or_default(),
                x: w.x().map_err(&e)?,
                y: w.y().map_err(&e)?,
                width: w.width().map_err(&e)?,
                height: w.height().map_err(&e)?,
                minimized: w.is_minimized().unwrap_or(false),
            })
        })
        .collect()
}

/// Captures the window with id `id` (see [`list_windows`]).
pub fn capture_window(id: u32) -> Result<Image, VisionError> {
    let all = windows()?;
    let w = all
        .iter()
        .find(|w| w.id().ok() == Some(id))
        .ok_or_else(|| VisionError::Capture(format!("there is no window with id {id}")))?;
    if w.is_minimized().unwrap_or(false) {
        return Err(VisionError::Capture(format!(
            "window {id} is minimised; restore it first"
        )));
    }
    let img = w
        .capture_image()
        .map_err(xcap_err("cannot capture the window"))?;
    let image = Image {
        width: img.width(),
        height: img.height(),
        rgba: img.into_raw(),
    };
    image.validate()?;
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mon(index: usize, x: i32, y: i32, width: u32, height: u32, scale: f32) -> MonitorInfo {
        MonitorInfo {
            index,
            name: format!("m{index}"),
            x,
            y,
            width,
            height,
            scale_factor: scale,
            primary: index == 0,
        }
    }

    #[test]
    fn region_parses_and_rejects_garbage() {
        let r: Region = "10,-20,300,40".parse().unwrap();
        assert_eq!(
            r,
            Region {
                x: 10,
                y: -20,
                width: 300,
                height: 40
            }
        );
        assert!("1,2,3".parse::<Region>().is_err());
        assert!("1,2,0,5"
            .parse::<Region>()
            .unwrap_err()
            .to_string()
            .contains("empty"));
        assert!("a,b,c,d".parse::<Region>().is_err());
    }

    #[test]
    fn region_spanning_two_monitors_is_split() {
        // A 1920×1080 monitor and a HiDPI 2560×1440 one (scale 2) to its right.
        let ms = [
            mon(0, 0, 0, 1920, 1080, 1.0),
            mon(1, 1920, 0, 2560, 1440, 2.0),
        ];
        let p = plan_region(
            &ms,
            Region {
                x: 1900,
                y: 100,
                width: 50,
                height: 20,
            },
        )
        .unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].monitor, p[0].src_x, p[0].dst_x, p[0].width),
            (0, 1900, 0, 20)
        );
        assert_eq!(
            (p[1].monitor, p[1].src_x, p[1].dst_x, p[1].width),
            (1, 0, 20, 30)
        );
        let e = plan_region(
            &ms,
            Region {
                x: 0,
                y: 5000,
                width: 10,
                height: 10,
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("outside every monitor"));
    }

    #[test]
    fn blit_copies_the_block() {
        let src = Image {
            width: 4,
            height: 4,
            rgba: (0..64).collect(),
        };
        let mut dst = Image {
            width: 2,
            height: 2,
            rgba: vec![0; 16],
        };
        blit(
            &src,
            &mut dst,
            &Piece {
                monitor: 0,
                src_x: 1,
                src_y: 1,
                dst_x: 0,
                dst_y: 0,
                width: 2,
                height: 2,
            },
        );
        assert_eq!(&dst.rgba[0..4], &[20, 21, 22, 23]);
        assert_eq!(&dst.rgba[12..16], &[40, 41, 42, 43]);
    }
}
