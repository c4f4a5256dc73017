//! GPU probing with `cudarc` (libcuda loaded at run time) and the GPU-offload decision.
//!
//! [`probe`] never panics: it checks that libcuda can be loaded at all before calling into
//! the driver, and wraps the driver calls in `catch_unwind` (some `cudarc` calls panic
//! instead of returning an error when the library is missing). [`choose_gpu_layers`] is a
//! pure function, tested without a GPU.

use serde::{Deserialize, Serialize};

/// One CUDA device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuDevice {
    /// CUDA ordinal.
    pub ordinal: u32,
    /// Device name as the driver reports it.
    pub name: String,
    /// Total memory in bytes.
    pub total_bytes: u64,
    /// Free memory in bytes at probe time.
    pub free_bytes: u64,
}

/// What [`probe`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuReport {
    /// CUDA devices (empty without a driver or GPU).
    pub devices: Vec<GpuDevice>,
    /// Why there are no devices, or what went wrong, in words.
    pub note: Option<String>,
}

impl GpuReport {
    /// Free bytes on the device with the most free memory (0 without GPU).
    pub fn best_free_bytes(&self) -> u64 {
        self.devices.iter().map(|d| d.free_bytes).max().unwrap_or(0)
    }

    /// Whether any CUDA device was found.
    pub fn has_gpu(&self) -> bool {
        !self.devices.is_empty()
    }
}

/// Probe CUDA devices and their free memory. Never panics; without a driver the report
/// says so.
pub fn probe() -> GpuReport {
    // SAFETY: only tries to dlopen libcuda and closes it again.
    let present = unsafe { cudarc::driver::sys::is_culib_present() };
    if !present {
        return GpuReport {
            devices: Vec::new(),
            note: Some(
                "no NVIDIA driver found (libcuda.so could not be loaded): running on CPU".into(),
            ),
        };
    }
    match std::panic::catch_unwind(probe_driver) {
        Ok(Ok(devices)) if devices.is_empty() => GpuReport {
            devices,
            note: Some("the NVIDIA driver reports no CUDA devices: running on CPU".into()),
        },
        Ok(Ok(devices)) => GpuReport {
            devices,
            note: None,
        },
        Ok(Err(message)) => GpuReport {
            devices: Vec::new(),
            note: Some(format!("CUDA driver error: {message}: running on CPU")),
        },
        Err(_) => GpuReport {
            devices: Vec::new(),
            note: Some("the CUDA driver could not be used (probe aborted): running on CPU".into()),
        },
    }
}

fn probe_driver() -> Result<Vec<GpuDevice>, String> {
    use cudarc::driver::CudaContext;
    let count = CudaContext::device_count().map_err(|e| e.to_string())?;
    let mut devices = Vec::new();
    for ordinal in 0..count.max(0) as usize {
        let ctx = CudaContext::new(ordinal).map_err(|e| e.to_string())?;
        let name = ctx
            .name()
            .unwrap_or_else(|_| format!("CUDA device {ordinal}"));
        let (free, total) = ctx.mem_get_info().map_err(|e| e.to_string())?;
        devices.push(GpuDevice {
            ordinal: ordinal as u32,
            name,
            total_bytes: total as u64,
            free_bytes: free as u64,
        });
    }
    Ok(devices)
}

/// How many layers to offload to a GPU with `free_vram` bytes free, for a model whose
/// weights take `model_bytes` over `n_layers` transformer blocks, keeping `reserve_bytes`
/// free for the KV cache, compute buffers and other programs.
///
/// The weights are treated as `n_layers + 1` equal slices (the extra one is the embeddings
/// and output head). Returns `n_layers + 1` (llama.cpp's "everything, output included")
/// when the whole model fits, otherwise the number of whole blocks that fit, and 0 when
/// nothing fits or there is no GPU.
pub fn choose_gpu_layers(
    model_bytes: u64,
    n_layers: u32,
    free_vram: u64,
    reserve_bytes: u64,
) -> u32 {
    if n_layers == 0 || model_bytes == 0 {
        return 0;
    }
    let usable = free_vram.saturating_sub(reserve_bytes);
    if usable >= model_bytes {
        return n_layers + 1;
    }
    let per_layer = model_bytes.div_ceil(u64::from(n_layers) + 1).max(1);
    let fit = usable / per_layer;
    u32::try_from(fit.min(u64::from(n_layers))).unwrap_or(n_layers)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn probe_never_panics_and_explains() {
        let report = probe();
        if !report.has_gpu() {
            assert!(report.note.is_some());
            assert_eq!(report.best_free_bytes(), 0);
        }
    }

    #[test]
    fn everything_fits() {
        assert_eq!(choose_gpu_layers(GIB, 30, 8 * GIB, GIB), 31);
    }

    #[test]
    fn partial_offload_counts_whole_layers() {
        // 31 slices of 100 MiB; 1 GiB usable → 10 layers.
        let mib = 1 << 20;
        assert_eq!(choose_gpu_layers(3100 * mib, 30, 2 * GIB, GIB), 10);
    }

    #[test]
    fn nothing_fits_or_no_gpu() {
        assert_eq!(choose_gpu_layers(GIB, 30, 0, 0), 0);
        assert_eq!(choose_gpu_layers(GIB, 30, GIB / 2, GIB), 0);
        assert_eq!(choose_gpu_layers(0, 30, GIB, 0), 0);
        assert_eq!(choose_gpu_layers(GIB, 0, 8 * GIB, 0), 0);
    }

    #[test]
    fn never_more_than_all_layers() {
        for free in [0, GIB, 3 * GIB, 100 * GIB] {
            assert!(choose_gpu_layers(2 * GIB, 24, free, 0) <= 25);
        }
    }
}
