//! The on-disk cache of compiled guests (`*.cwasm`), so only the first start of a
//! machine pays the compile (about 5 s for `python.wasm`).
//!
//! An entry is keyed by the guest's sha256 and by wasmtime's own compatibility
//! hash of the engine (wasmtime version, target, compiler flags, features,
//! tunables), so a changed guest, a wasmtime upgrade or a changed engine setting
//! each miss the cache instead of loading an incompatible artifact. This module
//! must never load a `.cwasm` from anywhere but the configured cache directory.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use robit_types::Language;
use wasmtime::{Engine, Module};

use crate::error::{chain, SandboxError};
use crate::guest::{expected_sha256, sha256_hex};

/// Bumped when the way we produce cache entries changes.
const FORMAT: u32 = 1;

fn engine_key(engine: &Engine) -> u64 {
    let mut h = DefaultHasher::new();
    FORMAT.hash(&mut h);
    engine.precompile_compatibility_hash().hash(&mut h);
    h.finish()
}

fn entry_path(cache_dir: &Path, language: Language, sha: &str, engine: &Engine) -> PathBuf {
    cache_dir.join(format!(
        "{}-{}-{:016x}.cwasm",
        language.as_str(),
        &sha[..32],
        engine_key(engine)
    ))
}

/// Loads the guest at `path`, from the cache when possible, compiling (and
/// caching) it otherwise. Blocking: call it off the async runtime.
pub(crate) fn load(
    engine: &Engine,
    language: Language,
    path: &Path,
    cache_dir: &Path,
) -> Result<Module, SandboxError> {
    let bytes = fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            SandboxError::GuestMissing {
                language,
                path: path.to_path_buf(),
            }
        } else {
            SandboxError::ReadGuest {
                language,
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    let sha = sha256_hex(&bytes);
    if sha != expected_sha256(language) {
        tracing::warn!(
            %language, path = %path.display(), %sha,
            "guest digest differs from the pinned one; using it anyway"
        );
    }

    let entry = entry_path(cache_dir, language, &sha, engine);
    if entry.is_file() {
        // SAFETY: `deserialize_file` trusts the file to be an artifact produced by
        // a compatible wasmtime. Only this module writes into the cache directory,
        // always by an atomic rename of a fully written `Module::serialize`
        // output, and the name carries the engine compatibility hash. Whoever can
        // write into the cache directory can already replace our binary.
        match unsafe { Module::deserialize_file(engine, &entry) } {
            Ok(module) => {
                tracing::debug!(%language, entry = %entry.display(), "loaded compiled guest from cache");
                return Ok(module);
            }
            Err(e) => {
                tracing::warn!(%language, entry = %entry.display(), error = %chain(&e), "discarding unusable cache entry");
                let _ = fs::remove_file(&entry);
            }
        }
    }

    let started = Instant::now();
    let module = Module::new(engine, &bytes).map_err(|e| SandboxError::Compile {
        language,
        path: path.to_path_buf(),
        message: chain(&e),
    })?;
    tracing::info!(%language, elapsed = ?started.elapsed(), "compiled guest");
    // A cache that cannot be written only costs speed on the next start.
    if let Err(e) = store(&module, cache_dir, &entry, language) {
        tracing::warn!(%language, cache_dir = %cache_dir.display(), error = %e, "could not write the compile cache");
    }
    Ok(module)
}

fn store(
    module: &Module,
    cache_dir: &Path,
    entry: &Path,
    language: Language,
) -> Result<(), String> {
    let bytes = module.serialize().map_err(|e| chain(&e))?;
    fs::create_dir_all(cache_dir).map_err(|e| e.to_string())?;
    // Write to a temporary name and rename, so a concurrent reader (another
    // process starting) never maps a half-written file.
    let mut tmp = tempfile::NamedTempFile::new_in(cache_dir).map_err(|e| e.to_string())?;
    tmp.write_all(&bytes).map_err(|e| e.to_string())?;
    tmp.persist(entry).map_err(|e| e.to_string())?;
    remove_stale(cache_dir, entry, language);
    Ok(())
}

/// Removes older entries of the same guest, left by a previous guest or wasmtime version.
fn remove_stale(cache_dir: &Path, keep: &Path, language: Language) {
    let Ok(dir) = fs::read_dir(cache_dir) else {
        return;
    };
    let prefix = format!("{}-", language.as_str());
    for entry in dir.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path != keep && name.starts_with(&prefix) && name.ends_with(".cwasm") {
            let _ = fs::remove_file(&path);
        }
    }
}
