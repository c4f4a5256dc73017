//! Which chat models this machine runs comfortably, and which of them is the default when
//! the config says `default_model = "auto"`: the rules are pure ([`assess`]); the runtime
//! applies them to the manifest, the installed models and the GPU probe.

use crate::fetch::ManifestModel;
use crate::{Runtime, RuntimeError};
use serde::Serialize;

/// The store setting that holds the chat model chosen for `default_model = "auto"` (by
/// `baton models fetch --recommended` or the app's first start).
pub const DEFAULT_MODEL_SETTING: &str = "chat.default_model";

/// What decides whether a model is comfortable here.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Machine {
    /// CPU cores.
    pub cores: usize,
    /// Physical memory in bytes.
    pub ram_bytes: u64,
    /// Free memory of the best GPU in bytes (0 without one).
    pub gpu_free_bytes: u64,
}

/// Bytes of model file one CPU core decodes at a comfortable speed (measured here:
/// Qwen2.5-Coder-1.5B, 1.1 GB, about 6 tokens/s on 2 cores; more bytes per core is slower
/// than reading speed).
const BYTES_PER_CORE: u64 = 600 << 20;

/// A chat model's fit on this machine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelFit {
    /// Manifest name.
    pub name: String,
    /// File size in bytes.
    pub size: u64,
    /// Quality rank from the manifest (higher is better).
    pub rank: u32,
    /// Whether it is installed.
    pub installed: bool,
    /// Whether it runs comfortably here.
    pub fits: bool,
    /// Why, in words.
    pub why: String,
    /// Decode speed measured on this machine (evaluations or chat), tokens per second.
    pub measured_tokens_per_second: Option<f64>,
    /// Pass rate over the built-in evaluation, where measured.
    pub eval_pass_rate: Option<f64>,
}

/// Whether a model of `size` bytes runs comfortably on `machine`, and why.
pub fn assess(size: u64, machine: &Machine) -> (bool, String) {
    let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
    // The weights, the KV cache of a 4k context and llama.cpp's buffers.
    let need = size + size / 5 + (256 << 20);
    let budget = machine.ram_bytes / 2;
    if need > budget {
        return (
            false,
            format!(
                "needs about {:.1} GiB; half of this machine's {:.0} GiB is {:.1} GiB",
                gib(need),
                gib(machine.ram_bytes),
                gib(budget)
            ),
        );
    }
    if machine.gpu_free_bytes >= need {
        return (
            true,
            format!(
                "fits the GPU ({:.1} of {:.1} GiB free)",
                gib(need),
                gib(machine.gpu_free_bytes)
            ),
        );
    }
    let cpu_limit = machine.cores as u64 * BYTES_PER_CORE;
    if size > cpu_limit {
        return (
            false,
            format!(
                "{:.1} GB is slow on {} CPU cores without a GPU (comfortable up to {:.1} GB)",
                size as f64 / 1e9,
                machine.cores,
                cpu_limit as f64 / 1e9
            ),
        );
    }
    (
        true,
        format!(
            "{:.1} GB runs on {} CPU cores in {:.1} GiB of memory",
            size as f64 / 1e9,
            machine.cores,
            gib(need)
        ),
    )
}

/// The model to recommend here: the highest-ranked one that runs comfortably, installed or
/// not (choosing it downloads it).
pub fn recommended(fits: &[ModelFit]) -> Option<&ModelFit> {
    fits.iter().filter(|f| f.fits).max_by_key(|f| f.rank)
}

/// The best of `fits` (installed, comfortable, highest rank).
pub fn best_default(fits: &[ModelFit]) -> Option<&ModelFit> {
    fits.iter()
        .filter(|f| f.installed && f.fits)
        .max_by_key(|f| f.rank)
}

impl Runtime {
    /// This machine: cores, memory, free GPU memory.
    pub fn machine(&self) -> Machine {
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            ram_bytes: crate::models::total_memory_bytes().unwrap_or(0),
            gpu_free_bytes: self.gpu_report().best_free_bytes(),
        }
    }

    /// Every chat model of the manifest with its fit here, best first.
    pub async fn chat_model_fits(&self) -> Result<Vec<ModelFit>, RuntimeError> {
        let machine = self.machine();
        let installed = self.store.list_models().await?;
        let quality = self.store.domain_quality().await?;
        let stats = self.store.stats().await?;
        let mut out: Vec<ModelFit> = crate::fetch::manifest()
            .into_iter()
            .filter(|m: &ManifestModel| m.task == "chat")
            .map(|m| {
                let (fits, why) = assess(m.size, &machine);
                let all = quality.get(&(m.name.clone(), "all".to_owned()));
                let measured = all
                    .map(|q| q.tokens_per_second)
                    .filter(|t| *t > 0.0)
                    .or_else(|| {
                        stats
                            .models
                            .iter()
                            .find(|s| s.key == m.name)
                            .and_then(|s| s.tokens_per_second)
                    });
                ModelFit {
                    installed: installed
                        .iter()
                        .any(|r| r.name == m.name && std::path::Path::new(&r.path).exists()),
                    fits,
                    why,
                    measured_tokens_per_second: measured,
                    eval_pass_rate: all
                        .filter(|q| q.total > 0)
                        .map(|q| f64::from(q.passed) / f64::from(q.total)),
                    rank: m.rank,
                    size: m.size,
                    name: m.name,
                }
            })
            .collect();
        out.sort_by_key(|f| std::cmp::Reverse(f.rank));
        Ok(out)
    }

    /// The chat model used when none is chosen: the config's `chat.default_model`, or with
    /// `auto` the one chosen for this machine (see [`Runtime::set_default_model`]).
    pub fn default_model(&self) -> String {
        self.default_model.read().expect("default lock").clone()
    }

    /// Makes `name` the default chat model (with `default_model = "auto"` in the config;
    /// a config that names a model wins, and this says so).
    pub async fn set_default_model(&self, name: &str) -> Result<(), RuntimeError> {
        if self.config.chat.default_model != "auto" {
            return Err(RuntimeError::Model(format!(
                "the config file {} sets chat.default_model = \"{}\"; change it there (or set it to \"auto\")",
                self.paths.config_file.display(),
                self.config.chat.default_model
            )));
        }
        let record = self.model(name).await?;
        if !record.tasks.contains(&baton_core::TaskKind::Chat) {
            return Err(RuntimeError::Model(format!(
                "{name} is not a chat model; pick one from `baton models list`"
            )));
        }
        self.store
            .set_setting(DEFAULT_MODEL_SETTING, &serde_json::json!(name))
            .await?;
        *self.default_model.write().expect("default lock") = name.to_owned();
        Ok(())
    }

    /// Works out the default chat model at start: the config's name; with `auto`, the
    /// stored choice if it is still installed, else the best installed model that fits,
    /// else the manifest's default.
    pub(crate) async fn resolve_default_model(&self) -> Result<(), RuntimeError> {
        let configured = &self.config.chat.default_model;
        let name = if configured != "auto" {
            configured.clone()
        } else {
            let stored = self
                .store
                .setting(DEFAULT_MODEL_SETTING)
                .await?
                .and_then(|v| v.as_str().map(str::to_owned));
            let registered = |n: &str| self.specs.read().expect("spec lock").contains_key(n);
            match stored.filter(|n| registered(n)) {
                Some(n) => n,
                None => {
                    let fits = self.chat_model_fits().await?;
                    best_default(&fits)
                        .map(|f| f.name.clone())
                        .or_else(|| {
                            crate::fetch::manifest()
                                .into_iter()
                                .find(|m| m.default && m.task == "chat")
                                .map(|m| m.name)
                        })
                        .unwrap_or_else(|| "smollm2-135m-instruct".into())
                }
            }
        };
        *self.default_model.write().expect("default lock") = name;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn machine(cores: usize, ram_gib: u64, gpu_gib: u64) -> Machine {
        Machine {
            cores,
            ram_bytes: ram_gib * GIB,
            gpu_free_bytes: gpu_gib * GIB,
        }
    }

    #[test]
    fn small_machines_get_small_models_and_say_why() {
        let qwen_1_5b = 1_117_320_768;
        let qwen_0_5b = 491_400_064;
        // This machine: 2 cores, 23 GiB, no GPU: both fit.
        assert!(assess(qwen_1_5b, &machine(2, 23, 0)).0);
        // One core: the 1.5B is too slow without a GPU, the 0.5B fits.
        let (fits, why) = assess(qwen_1_5b, &machine(1, 23, 0));
        assert!(!fits && why.contains("slow on 1 CPU cores"), "{why}");
        assert!(assess(qwen_0_5b, &machine(1, 23, 0)).0);
        // Little memory.
        let (fits, why) = assess(qwen_1_5b, &machine(8, 2, 0));
        assert!(
            !fits && why.contains("half of this machine's 2 GiB"),
            "{why}"
        );
        // A GPU with room makes it comfortable on one core.
        let (fits, why) = assess(qwen_1_5b, &machine(1, 23, 8));
        assert!(fits && why.contains("GPU"), "{why}");
    }

    #[test]
    fn the_default_is_the_best_installed_model_that_fits() {
        let f = |name: &str, rank, installed, fits| ModelFit {
            name: name.into(),
            size: 0,
            rank,
            installed,
            fits,
            why: String::new(),
            measured_tokens_per_second: None,
            eval_pass_rate: None,
        };
        let fits = [
            f("big", 3, true, false),
            f("mid", 2, true, true),
            f("small", 1, true, true),
            f("missing", 4, false, true),
        ];
        assert_eq!(best_default(&fits).unwrap().name, "mid");
        assert_eq!(recommended(&fits).unwrap().name, "missing");
        assert!(best_default(&[f("x", 1, false, true)]).is_none());
    }
}
