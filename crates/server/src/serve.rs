//! `genai serve` and `genai migrate`: configuration, store selection, start-up and shutdown.

use clap::Args;
use genai_app::{App, Clock, Store};
use genai_core::calendar::{format_instant, parse_instant};
use genai_core::Catalog;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Options of `genai serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, env = "GENAI_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    #[command(flatten)]
    db: DatabaseArgs,
    /// Start the clock at this instant (RFC 3339); it then moves only through
    /// `POST /api/v1/operator/clock`. For tests and demos of month boundaries.
    #[arg(long, value_name = "INSTANT")]
    manual_clock: Option<String>,
    /// Replace the built-in catalog with this TOML file (`genai catalog --default` prints one).
    #[arg(long, env = "GENAI_CATALOG", value_name = "FILE")]
    catalog: Option<PathBuf>,
    /// On an empty database, create a demo company with 500 cloud tokens, an admin and a member,
    /// and print their logins.
    #[arg(long)]
    demo: bool,
}

/// Options of `genai migrate`.
#[derive(Args, Debug)]
pub struct MigrateArgs {
    #[command(flatten)]
    db: DatabaseArgs,
}

/// Where the data lives.
#[derive(Args, Debug)]
struct DatabaseArgs {
    /// `sqlite://PATH` (created if missing) or `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`.
    #[arg(long, env = "GENAI_DATABASE", default_value = "sqlite://genai.db", hide_env_values = true)]
    database: String,
    /// PostgreSQL: connections in the pool.
    #[arg(long, env = "GENAI_DB_POOL_SIZE", default_value_t = 10)]
    db_pool_size: u32,
    /// PostgreSQL: statement timeout in seconds (0 = none).
    #[arg(long, env = "GENAI_DB_STATEMENT_TIMEOUT", default_value_t = 30)]
    db_statement_timeout: u64,
}

/// The URL without its password, for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

async fn open_store(db: &DatabaseArgs) -> Result<Arc<dyn Store>, String> {
    let url = db.database.as_str();
    if url.starts_with("sqlite:") {
        let store = genai_store_sqlite::open(url)
            .await
            .map_err(|e| format!("cannot open {}: {}", redact(url), genai_store::error_chain(&e)))?;
        Ok(Arc::new(store))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let options = genai_store_postgres::PgOptions {
            max_connections: db.db_pool_size.max(1),
            statement_timeout: (db.db_statement_timeout > 0).then(|| Duration::from_secs(db.db_statement_timeout)),
        };
        let store = genai_store_postgres::open(url, options)
            .await
            .map_err(|e| format!("cannot open {}: {}", redact(url), genai_store::error_chain(&e)))?;
        Ok(Arc::new(store))
    } else {
        Err(format!("--database must start with sqlite:// or postgres://, not {}", redact(url)))
    }
}

fn init_logging() {
    let level = std::env::var("GENAI_LOG").ok().and_then(|l| l.parse().ok()).unwrap_or(tracing::Level::INFO);
    // Logs go to stderr (stdout carries what `serve` prints for people and scripts), coloured
    // only on a terminal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}

/// `genai migrate`.
pub async fn migrate(args: MigrateArgs) -> ExitCode {
    init_logging();
    match open_store(&args.db).await {
        Ok(_) => {
            println!("migrations applied to {}", redact(&args.db.database));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `genai serve`.
pub async fn serve(args: ServeArgs) -> ExitCode {
    init_logging();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: ServeArgs) -> Result<(), String> {
    let catalog = match &args.catalog {
        None => Catalog::builtin(),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            Catalog::from_toml(&text).map_err(|e| format!("invalid catalog {}: {e}", path.display()))?
        }
    };
    let clock = match &args.manual_clock {
        None => Clock::System,
        Some(s) => Clock::manual(
            parse_instant(s).ok_or_else(|| format!("--manual-clock: \"{s}\" is not an RFC 3339 instant"))?,
        ),
    };
    let manual = clock.is_manual();
    let store = open_store(&args.db).await?;
    let operator_token = std::env::var("GENAI_OPERATOR_TOKEN").ok();
    if operator_token.as_deref().is_none_or(str::is_empty) {
        tracing::warn!("GENAI_OPERATOR_TOKEN is not set: the Operator API is disabled");
    }
    let app = Arc::new(App::new(store, catalog, clock, operator_token.as_deref()));

    // Catch up on whatever fell due while the server was down, before answering anything.
    let caught_up = app.apply_due_changes().await.map_err(|e| format!("applying due changes: {e}"))?;
    if caught_up > 0 {
        tracing::info!(applied = caught_up, "applied scheduled changes that fell due while the server was down");
    }
    if args.demo {
        match app.seed_demo().await.map_err(|e| format!("creating the demo company: {e}"))? {
            Some(demo) => {
                println!("Demo company \"{}\" created with 500 cloud tokens.", demo.company);
                println!("  company admin: {}  password: {}", demo.admin.0, demo.admin.1);
                println!("  API token of the admin (shown once): {}", demo.admin.2);
                println!("  member:        {}  password: {}", demo.member.0, demo.member.1);
            }
            None => println!(
                "--demo: the database already has companies, so no demo company was created (the demo \
                 logins were printed when it was; delete the database file to start afresh)."
            ),
        }
    }
    if !manual {
        genai_app::scheduler::spawn(app.clone());
    }

    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(
        database = %redact(&args.db.database),
        clock = if manual { "manual" } else { "system" },
        now = %format_instant(app.now()),
        "listening on http://{addr}"
    );
    println!("GenAI Resources listening on http://{addr}");
    axum::serve(listener, genai_http::router(app))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(redact("postgres://app:s3cret@db:5432/genai"), "postgres://app:***@db:5432/genai");
        assert_eq!(redact("sqlite://genai.db"), "sqlite://genai.db");
    }
}
