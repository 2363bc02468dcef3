//! `genai serve` and `genai migrate`: store selection, start-up and shutdown. What they run with
//! is [`Settings`], validated before anything starts.

use crate::settings::{redact, DatabaseSettings, MigrateArgs, ServeArgs, Settings};
use genai_app::{App, Clock, Store};
use genai_core::calendar::format_instant;
use genai_core::Catalog;
use genai_http::serve::ServeOptions;
use std::process::ExitCode;
use std::sync::Arc;

async fn open_store(db: &DatabaseSettings) -> Result<Arc<dyn Store>, String> {
    let url = db.url.as_str();
    if url.starts_with("sqlite:") {
        let store = genai_store_sqlite::open(url)
            .await
            .map_err(|e| format!("cannot open {}: {}", redact(url), genai_store::error_chain(&e)))?;
        Ok(Arc::new(store))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let options =
            genai_store_postgres::PgOptions { max_connections: db.pool_size, statement_timeout: db.statement_timeout };
        let store = genai_store_postgres::open(url, options)
            .await
            .map_err(|e| format!("cannot open {}: {}", redact(url), genai_store::error_chain(&e)))?;
        Ok(Arc::new(store))
    } else {
        Err(format!("--database must start with sqlite:// or postgres://, not {}", redact(url)))
    }
}

fn init_logging(level: tracing::Level) {
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
    let db = match Settings::load_database(&args) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(tracing::Level::INFO);
    match open_store(&db).await {
        Ok(_) => {
            println!("migrations applied to {}", redact(&db.url));
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
    // Invalid settings stop the server before it touches anything, with exit code 2 (usage).
    let settings = match Settings::load(&args, std::env::var("GENAI_OPERATOR_TOKEN").ok()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(settings.log);
    match run(settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings) -> Result<(), String> {
    if let Some(file) = &settings.file {
        tracing::info!(file = %file.display(), "settings read from file");
    }
    let catalog = match &settings.catalog {
        None => Catalog::builtin(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--catalog (GENAI_CATALOG): cannot read {}: {e}", path.display()))?;
            Catalog::from_toml(&text)
                .map_err(|e| format!("--catalog (GENAI_CATALOG): invalid catalog {}: {e}", path.display()))?
        }
    };
    let clock = settings.manual_clock.map_or(Clock::System, Clock::manual);
    let manual = clock.is_manual();
    let store = open_store(&settings.database).await?;
    let operator_token = settings.operator_token.as_ref().map(|t| t.expose());
    match operator_token {
        None => tracing::warn!("GENAI_OPERATOR_TOKEN is not set: the Operator API is disabled"),
        Some(_) if settings.short_operator_token => tracing::warn!(
            "the operator token is shorter than the {} characters we recommend (e.g. `openssl rand -hex 16`)",
            crate::settings::OPERATOR_TOKEN_RECOMMENDED
        ),
        Some(_) => {}
    }
    // Bound first so that the default public URL can name the port (`--listen …:0` picks one);
    // nothing is served before the catch-up below has finished.
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .map_err(|e| format!("--listen (GENAI_LISTEN): cannot listen on {}: {e}", settings.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let public_url = settings.public_url.clone().unwrap_or_else(|| crate::settings::public_url_of(addr));
    // The Runtime API's routes: checked before anything is served (a bad file stops the start,
    // naming the line).
    let router_table = match &settings.providers {
        None => {
            tracing::info!("no providers file (--providers, GENAI_PROVIDERS): the Runtime API serves no model");
            genai_providers::Router::new()
        }
        Some(path) => {
            let config = genai_providers::ProvidersConfig::load(path, |m| catalog.model(m).is_some())
                .map_err(|e| format!("--providers (GENAI_PROVIDERS): {e}"))?;
            genai_providers::Router::from_config(&config)
        }
    };
    // The runtime's key cache hears this instance's revocations and plan changes at once.
    let key_cache = genai_runtime::KeyCache::new();
    let app = Arc::new(
        App::new(Arc::clone(&store), catalog, clock, operator_token)
            .with_public_url(&public_url)
            .with_runtime_events(key_cache.clone()),
    );
    let runtime =
        genai_runtime::Runtime::start(app.clone(), store, router_table, key_cache, genai_runtime::Config::default());

    // Catch up on whatever fell due while the server was down, before answering anything.
    let caught_up = app.apply_due_changes().await.map_err(|e| format!("applying due changes: {}", e.chain()))?;
    if caught_up > 0 {
        tracing::info!(applied = caught_up, "applied scheduled changes that fell due while the server was down");
    }
    if settings.demo {
        match app.seed_demo().await.map_err(|e| format!("creating the demo company: {}", e.chain()))? {
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

    tracing::info!(
        database = %redact(&settings.database.url),
        clock = if manual { "manual" } else { "system" },
        now = %format_instant(app.now()),
        public_url = %public_url,
        "listening on http://{addr}"
    );
    println!("GenAI Resources listening on http://{addr}");
    let limits = &settings.http;
    let options = ServeOptions {
        header_read_timeout: limits.header_read_timeout,
        request_timeout: limits.request_timeout,
        max_connections: limits.max_connections,
        trust_forwarded_for: limits.trust_forwarded_for,
    };
    let router = genai_http::router_with_runtime(app, Some(runtime.clone()), limits.request_timeout);
    let served = genai_http::serve::serve(listener, router, options, shutdown_signal()).await;
    // Every connection has finished: make the last usage durable and give the leases back.
    runtime.shutdown().await;
    tracing::info!("usage flushed and quota leases returned");
    served.map_err(|e| format!("server error: {e}"))
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
