//! Fuzz campaigns for every parser Baton runs on outside input.
//!
//! Each [`targets::Target`] feeds one input to one parser the way the product does and
//! checks what must hold for any input. A campaign runs cases made by [`mutate`] from the
//! target's [`seeds`] (and, for audio headers, a structured generator) in a child process
//! under a watchdog ([`campaign`]) and a counting allocator ([`alloc`]), so a panic, a
//! hang past the time limit, an allocation past the memory limit or a crash of native
//! code is caught, and the input that caused it is written out to become a regression
//! test under `regressions/<target>/`. The `baton-fuzz` binary runs campaigns (`make
//! fuzz`) and replays the regressions (`make test`, through this crate's tests).

#![warn(missing_docs)]

pub mod alloc;
pub mod campaign;
pub mod mutate;
pub mod seeds;
pub mod targets;

pub use targets::{find, Target, TARGETS};

/// The folder of checked-in inputs that once failed, one subfolder per target.
pub fn regressions_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions")
}
