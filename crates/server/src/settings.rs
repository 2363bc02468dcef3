//! The server's settings: one typed struct ([`Settings`]) built from command-line flags, the
//! environment and an optional TOML file, and validated before anything starts.
//!
//! Precedence, highest first: a flag, its environment variable, the settings file, the default.
//! The settings file is the one named by `--config FILE` / `GENAI_CONFIG`; without either,
//! `./genai.toml` is read when it exists (and the server says so on start), so a directory can
//! carry its own settings. Keys are the flag names with `_` for `-` (`listen`, `database`,
//! `request_timeout`, …); an unknown key is an error, so a typo never silently does nothing.
//! Relative paths in the file are relative to the file. The operator token can come from
//! `GENAI_OPERATOR_TOKEN` or the file's `operator_token` (never from a flag: flags are visible to
//! every user of the machine in the process list).
//!
//! Every problem is reported at once, each naming the setting as a flag, an environment
//! variable and a file key, so the message says what to change wherever it was set. Secrets
//! never appear in messages or logs: the operator token is a [`Secret`], database URLs go through
//! [`redact`].

use clap::builder::BoolishValueParser;
use clap::Args;
use genai_core::calendar::parse_instant;
use genai_core::Instant;
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The shortest operator token accepted: 24 characters. Below it the server refuses to start.
///
/// 32 characters (16 random bytes in hex) is what we recommend and what a shorter token is
/// warned about ([`OPERATOR_TOKEN_RECOMMENDED`]); the hard floor is lower because the public
/// acceptance harness of the product's HTTP contract (`../shared/acceptance/harness.py`, which
/// outside tools rely on) starts servers with 27-character tokens (`op-` + 12 random bytes in
/// hex, 96 bits): refusing those would break the contract's own test tools. 24 characters of
/// any token a person or a script generates is already far beyond guessing over HTTP.
pub const OPERATOR_TOKEN_MIN: usize = 24;
/// The operator token length we recommend; a shorter one (≥ [`OPERATOR_TOKEN_MIN`]) is logged as
/// a warning at start.
pub const OPERATOR_TOKEN_RECOMMENDED: usize = 32;
/// The settings file read when none is named and it exists.
pub const DEFAULT_CONFIG: &str = "genai.toml";

/// Where the data lives (flags shared by `serve` and `migrate`).
#[derive(Args, Debug, Default, Clone)]
pub struct DatabaseArgs {
    /// `sqlite://PATH` (created if missing) or `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`
    /// [default: sqlite://genai.db]
    #[arg(long, env = "GENAI_DATABASE", hide_env_values = true, value_name = "URL")]
    database: Option<String>,
    /// PostgreSQL: connections in the pool [default: 10]
    #[arg(long, env = "GENAI_DB_POOL_SIZE", value_name = "N")]
    db_pool_size: Option<u32>,
    /// PostgreSQL: statement timeout in seconds, 0 = none [default: 30]
    #[arg(long, env = "GENAI_DB_STATEMENT_TIMEOUT", value_name = "SECONDS")]
    db_statement_timeout: Option<u64>,
}

/// Options of `genai serve` (see [`Settings`] for what each means and its default).
#[derive(Args, Debug, Default, Clone)]
pub struct ServeArgs {
    /// Settings file (TOML); without it, ./genai.toml is read if it exists
    #[arg(long, env = "GENAI_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port, and the chosen address is printed
    /// [default: 127.0.0.1:8080]
    #[arg(long, env = "GENAI_LISTEN", value_name = "ADDR")]
    listen: Option<String>,
    #[command(flatten)]
    db: DatabaseArgs,
    /// Start the clock at this instant (RFC 3339); it then moves only through
    /// `POST /api/v1/operator/clock`. For tests and demos of month boundaries.
    #[arg(long, value_name = "INSTANT")]
    manual_clock: Option<String>,
    /// Replace the built-in catalog with this TOML file (`genai catalog --default` prints one)
    #[arg(long, env = "GENAI_CATALOG", value_name = "FILE")]
    catalog: Option<PathBuf>,
    /// The providers file (TOML, RUNTIME.md §6): which upstream serves each model of the Runtime
    /// API. Without it, no model is served (calls answer 503 model_not_served)
    #[arg(long, env = "GENAI_PROVIDERS", value_name = "FILE")]
    providers: Option<PathBuf>,
    /// On an empty database, create a demo company with 500 cloud tokens, an admin and a member,
    /// and print their logins
    #[arg(long)]
    demo: bool,
    /// Log level: error, warn, info, debug or trace [default: info]
    #[arg(long, env = "GENAI_LOG", value_name = "LEVEL")]
    log: Option<String>,
    /// Seconds a client has to send a request's headers; also how long an idle connection
    /// stays open [default: 10]
    #[arg(long, env = "GENAI_HEADER_READ_TIMEOUT", value_name = "SECONDS")]
    header_read_timeout: Option<u64>,
    /// Seconds a request (its body and its answer) may take before it is answered 503
    /// [default: 30]
    #[arg(long, env = "GENAI_REQUEST_TIMEOUT", value_name = "SECONDS")]
    request_timeout: Option<u64>,
    /// Connections served at once; more wait to be accepted [default: 1024]
    #[arg(long, env = "GENAI_MAX_CONNECTIONS", value_name = "N")]
    max_connections: Option<usize>,
    /// Behind a reverse proxy that sets X-Forwarded-For: take the client address (for the login
    /// throttle) from its last hop [default: false]
    #[arg(long, env = "GENAI_TRUST_FORWARDED_FOR", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    trust_forwarded_for: Option<bool>,
    /// The URL clients reach this server at (behind a proxy, its URL): configuration keys and
    /// Portal links point there [default: http:// and the address it listens on]
    #[arg(long, env = "GENAI_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
}

/// Options of `genai migrate`.
#[derive(Args, Debug, Default, Clone)]
pub struct MigrateArgs {
    /// Settings file (TOML); without it, ./genai.toml is read if it exists
    #[arg(long, env = "GENAI_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    db: DatabaseArgs,
}

/// The settings file, as written. Every key is optional; unknown keys are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<String>,
    database: Option<String>,
    db_pool_size: Option<u32>,
    db_statement_timeout: Option<u64>,
    catalog: Option<PathBuf>,
    providers: Option<PathBuf>,
    log: Option<String>,
    operator_token: Option<String>,
    header_read_timeout: Option<u64>,
    request_timeout: Option<u64>,
    max_connections: Option<usize>,
    trust_forwarded_for: Option<bool>,
    public_url: Option<String>,
}

/// A secret setting: shown as `***` by `Debug`, so it never reaches a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The database and its pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSettings {
    /// `sqlite://…` or `postgres://…` (log it only through [`redact`]).
    pub url: String,
    /// PostgreSQL pool size.
    pub pool_size: u32,
    /// PostgreSQL statement timeout (`None`: no limit).
    pub statement_timeout: Option<Duration>,
}

/// What the HTTP server allows a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// To send a request's headers (and to stay idle between requests).
    pub header_read_timeout: Duration,
    /// For a whole request.
    pub request_timeout: Duration,
    /// Connections at once.
    pub max_connections: usize,
    /// Client address from `X-Forwarded-For`'s last hop.
    pub trust_forwarded_for: bool,
}

/// Everything `genai serve` runs with, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The settings file that was read, if any.
    pub file: Option<PathBuf>,
    /// `host:port` to listen on.
    pub listen: String,
    /// The database.
    pub database: DatabaseSettings,
    /// A catalog file replacing the built-in one.
    pub catalog: Option<PathBuf>,
    /// The providers file of the Runtime API.
    pub providers: Option<PathBuf>,
    /// The manual clock's start, if the clock is manual.
    pub manual_clock: Option<Instant>,
    /// Seed the demo company.
    pub demo: bool,
    /// The log level.
    pub log: tracing::Level,
    /// The operator's bearer token (`None`: the Operator API is disabled).
    pub operator_token: Option<Secret>,
    /// The operator token is shorter than [`OPERATOR_TOKEN_RECOMMENDED`] (warned about at start).
    pub short_operator_token: bool,
    /// HTTP limits.
    pub http: HttpLimits,
    /// The URL clients reach this server at, without a trailing `/` (`None`: `http://` and the
    /// address it listens on, see [`public_url_of`]).
    pub public_url: Option<String>,
}

/// Why the settings cannot be used: every problem found, each naming its setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError(pub Vec<String>);

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "the settings have {} problems:", many.len())?;
                for p in many {
                    write!(f, "\n  - {p}")?;
                }
                Ok(())
            }
        }
    }
}

/// How a setting is named in each source, for messages.
fn name(flag: &str, env: Option<&str>) -> String {
    let key = flag.replace('-', "_");
    match env {
        Some(env) => format!("--{flag} ({env}, `{key}` in the settings file)"),
        None => format!("--{flag} (`{key}` in the settings file)"),
    }
}

/// The file named by `--config`/`GENAI_CONFIG`, else `./genai.toml` if it exists; read and parsed.
fn read_file(named: Option<&Path>) -> Result<(Option<PathBuf>, FileSettings), String> {
    let path = match named {
        Some(p) => p.to_path_buf(),
        None => {
            let default = PathBuf::from(DEFAULT_CONFIG);
            if !default.exists() {
                return Ok((None, FileSettings::default()));
            }
            default
        }
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("--config (GENAI_CONFIG): cannot read {}: {e}", path.display()))?;
    let file: FileSettings =
        toml::from_str(&text).map_err(|e| format!("settings file {}: {}", path.display(), e.message()))?;
    Ok((Some(path), file))
}

/// A path from the settings file, taken relative to the file's directory.
fn relative_to(file: Option<&Path>, p: PathBuf) -> PathBuf {
    match file.and_then(Path::parent) {
        Some(dir) if p.is_relative() && !dir.as_os_str().is_empty() => dir.join(p),
        _ => p,
    }
}

fn database(args: &DatabaseArgs, file: &FileSettings, problems: &mut Vec<String>) -> DatabaseSettings {
    let url = args.database.clone().or_else(|| file.database.clone()).unwrap_or_else(|| "sqlite://genai.db".into());
    if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        problems.push(format!(
            "{} must start with sqlite:// or postgres://, not {}",
            name("database", Some("GENAI_DATABASE")),
            redact(&url)
        ));
    }
    let pool_size = args.db_pool_size.or(file.db_pool_size).unwrap_or(10);
    if !(1..=1000).contains(&pool_size) {
        problems.push(format!(
            "{} must be from 1 to 1000, not {pool_size}",
            name("db-pool-size", Some("GENAI_DB_POOL_SIZE"))
        ));
    }
    let timeout = args.db_statement_timeout.or(file.db_statement_timeout).unwrap_or(30);
    if timeout > 86_400 {
        problems.push(format!(
            "{} must be at most 86400 seconds (0 = none), not {timeout}",
            name("db-statement-timeout", Some("GENAI_DB_STATEMENT_TIMEOUT"))
        ));
    }
    DatabaseSettings { url, pool_size, statement_timeout: (timeout > 0).then(|| Duration::from_secs(timeout)) }
}

fn seconds(
    flag: &str,
    env: &str,
    value: Option<u64>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
    problems: &mut Vec<String>,
) -> Duration {
    let v = value.unwrap_or(default);
    if !range.contains(&v) {
        problems.push(format!(
            "{} must be from {} to {} seconds, not {v}",
            name(flag, Some(env)),
            range.start(),
            range.end()
        ));
    }
    Duration::from_secs(v)
}

/// Checks a public URL: `http://` or `https://`, a host, no query or fragment, no spaces.
/// Answers it without a trailing `/`.
fn parse_public_url(url: &str) -> Result<String, String> {
    let trimmed = url.trim_end_matches('/');
    let rest = trimmed.strip_prefix("http://").or_else(|| trimmed.strip_prefix("https://"));
    match rest {
        None => Err("must start with http:// or https://".into()),
        Some("") => Err("must name a host after the scheme".into()),
        Some(_) if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            Err("must not contain spaces or control characters".into())
        }
        Some(_) if trimmed.contains(['?', '#']) => Err("must not have a query or a fragment".into()),
        Some(_) => Ok(trimmed.to_string()),
    }
}

/// The public URL when none is set: `http://` and the address the server listens on, with an
/// unspecified address (`0.0.0.0`, `[::]`) replaced by the loopback one, which at least works
/// on this machine.
pub fn public_url_of(listening: std::net::SocketAddr) -> String {
    let mut addr = listening;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        } else {
            std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
        });
    }
    format!("http://{addr}")
}

fn listen_ok(listen: &str) -> bool {
    listen.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

impl Settings {
    /// The settings of `genai serve`: flags and environment (already merged by clap), the
    /// settings file, `GENAI_OPERATOR_TOKEN` (given as `operator_token_env`), defaults.
    pub fn load(args: &ServeArgs, operator_token_env: Option<String>) -> Result<Settings, SettingsError> {
        let (file_path, file) = read_file(args.config.as_deref()).map_err(|e| SettingsError(vec![e]))?;
        let mut problems = Vec::new();

        let listen = args.listen.clone().or_else(|| file.listen.clone()).unwrap_or_else(|| "127.0.0.1:8080".into());
        if !listen_ok(&listen) {
            problems.push(format!(
                "{} must be HOST:PORT such as 127.0.0.1:8080, not \"{listen}\"",
                name("listen", Some("GENAI_LISTEN"))
            ));
        }
        let database = database(&args.db, &file, &mut problems);
        let catalog =
            args.catalog.clone().or_else(|| file.catalog.clone().map(|p| relative_to(file_path.as_deref(), p)));
        let providers =
            args.providers.clone().or_else(|| file.providers.clone().map(|p| relative_to(file_path.as_deref(), p)));
        let manual_clock = match &args.manual_clock {
            None => None,
            Some(s) => {
                let parsed = parse_instant(s);
                if parsed.is_none() {
                    problems.push(format!(
                        "--manual-clock: \"{s}\" is not an RFC 3339 instant such as 2026-03-01T00:00:00Z"
                    ));
                }
                parsed
            }
        };
        let log_text = args.log.clone().or_else(|| file.log.clone()).unwrap_or_else(|| "info".into());
        let log = log_text.parse::<tracing::Level>().unwrap_or_else(|_| {
            problems.push(format!(
                "{} must be one of error, warn, info, debug, trace, not \"{log_text}\"",
                name("log", Some("GENAI_LOG"))
            ));
            tracing::Level::INFO
        });

        let token = operator_token_env.filter(|t| !t.is_empty()).or_else(|| file.operator_token.clone());
        let token_name = "the operator token (GENAI_OPERATOR_TOKEN, `operator_token` in the settings file)";
        let mut short_operator_token = false;
        if let Some(t) = &token {
            let n = t.chars().count();
            if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
                problems.push(format!("{token_name} must not contain spaces or control characters"));
            } else if n < OPERATOR_TOKEN_MIN {
                problems.push(format!(
                    "{token_name} must be at least {OPERATOR_TOKEN_MIN} characters long (it has {n}); \
                     make one with e.g. `openssl rand -hex 32`"
                ));
            } else if n < OPERATOR_TOKEN_RECOMMENDED {
                short_operator_token = true;
            }
        }

        let http = HttpLimits {
            header_read_timeout: seconds(
                "header-read-timeout",
                "GENAI_HEADER_READ_TIMEOUT",
                args.header_read_timeout.or(file.header_read_timeout),
                10,
                1..=300,
                &mut problems,
            ),
            request_timeout: seconds(
                "request-timeout",
                "GENAI_REQUEST_TIMEOUT",
                args.request_timeout.or(file.request_timeout),
                30,
                1..=3600,
                &mut problems,
            ),
            max_connections: {
                let n = args.max_connections.or(file.max_connections).unwrap_or(1024);
                if !(1..=100_000).contains(&n) {
                    problems.push(format!(
                        "{} must be from 1 to 100000, not {n}",
                        name("max-connections", Some("GENAI_MAX_CONNECTIONS"))
                    ));
                }
                n
            },
            trust_forwarded_for: args.trust_forwarded_for.or(file.trust_forwarded_for).unwrap_or(false),
        };

        let public_url = match args.public_url.clone().or_else(|| file.public_url.clone()) {
            None => None,
            Some(url) => match parse_public_url(&url) {
                Ok(url) => Some(url),
                Err(why) => {
                    problems.push(format!("{} {why}, not \"{url}\"", name("public-url", Some("GENAI_PUBLIC_URL"))));
                    None
                }
            },
        };

        if !problems.is_empty() {
            return Err(SettingsError(problems));
        }
        Ok(Settings {
            file: file_path,
            listen,
            database,
            catalog,
            providers,
            manual_clock,
            demo: args.demo,
            log,
            operator_token: token.map(Secret),
            short_operator_token,
            http,
            public_url,
        })
    }

    /// The database settings of `genai migrate` (flags, environment, settings file, defaults).
    pub fn load_database(args: &MigrateArgs) -> Result<DatabaseSettings, SettingsError> {
        let (_, file) = read_file(args.config.as_deref()).map_err(|e| SettingsError(vec![e]))?;
        let mut problems = Vec::new();
        let db = database(&args.db, &file, &mut problems);
        if problems.is_empty() {
            Ok(db)
        } else {
            Err(SettingsError(problems))
        }
    }
}

/// The URL with its password hidden, for logs and messages: the password of the user part
/// (`user:***@host`) and the value of any password-like query parameter (`?password=***`,
/// `sslpassword`, `pass`, `pwd`), whatever their case.
pub fn redact(url: &str) -> String {
    let (before_query, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match (before_query.find("://"), before_query.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &before_query[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &before_query[..scheme_end + 3], &before_query[at..]),
                None => before_query.to_string(),
            }
        }
        _ => before_query.to_string(),
    };
    if let Some(q) = query {
        let (q, fragment) = match q.split_once('#') {
            Some((q, f)) => (q, Some(f)),
            None => (q, None),
        };
        let params: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _))
                    if ["password", "sslpassword", "pass", "pwd"].iter().any(|p| k.eq_ignore_ascii_case(p)) =>
                {
                    format!("{k}=***")
                }
                _ => kv.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
        if let Some(f) = fragment {
            out.push('#');
            out.push_str(f);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(n: usize) -> Option<String> {
        Some("t".repeat(n))
    }

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(redact("postgres://app:s3cret@db:5432/genai"), "postgres://app:***@db:5432/genai");
        assert_eq!(redact("sqlite://genai.db"), "sqlite://genai.db");
        assert_eq!(
            redact("postgres://app@db/genai?sslmode=require&password=s3cret"),
            "postgres://app@db/genai?sslmode=require&password=***"
        );
        assert_eq!(redact("postgres://db/genai?PASSWORD=x&user=a@b"), "postgres://db/genai?PASSWORD=***&user=a@b");
        assert_eq!(redact("postgres://a:p%40ss@db/g?sslpassword=k#frag"), "postgres://a:***@db/g?sslpassword=***#frag");
        assert!(!redact("postgresql://u:hunter2@h/d?pwd=hunter3").contains("hunter"));
    }

    #[test]
    fn defaults_apply_without_flags_or_file() {
        let s =
            Settings::load(&ServeArgs { config: Some(PathBuf::from("/nonexistent")), ..ServeArgs::default() }, None);
        assert!(s.is_err(), "a named settings file that cannot be read is an error");
        let dir = std::env::temp_dir().join(format!("genai-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let file = dir.join("empty.toml");
        std::fs::write(&file, "").unwrap_or_else(|e| panic!("{e}"));
        let s = Settings::load(&ServeArgs { config: Some(file), ..ServeArgs::default() }, None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.listen, "127.0.0.1:8080");
        assert_eq!(s.database.url, "sqlite://genai.db");
        assert_eq!(s.http.request_timeout, Duration::from_secs(30));
        assert!(s.operator_token.is_none());
    }

    #[test]
    fn flags_win_over_the_file_and_paths_are_relative_to_it() {
        let dir = std::env::temp_dir().join(format!("genai-settings-rel-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let file = dir.join("genai.toml");
        std::fs::write(
            &file,
            "listen = \"0.0.0.0:9000\"\nrequest_timeout = 5\ncatalog = \"cat.toml\"\noperator_token = \"0123456789abcdef0123456789abcdef\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let args = ServeArgs { config: Some(file), listen: Some("127.0.0.1:1".into()), ..ServeArgs::default() };
        let s = Settings::load(&args, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.listen, "127.0.0.1:1");
        assert_eq!(s.http.request_timeout, Duration::from_secs(5));
        assert_eq!(s.catalog, Some(dir.join("cat.toml")));
        assert_eq!(s.operator_token.as_ref().map(Secret::expose), Some("0123456789abcdef0123456789abcdef"));
        assert_eq!(format!("{:?}", s.operator_token), "Some(***)");
    }

    #[test]
    fn every_problem_is_reported_naming_its_setting() {
        let dir = std::env::temp_dir().join(format!("genai-settings-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let file = dir.join("genai.toml");
        std::fs::write(&file, "").unwrap_or_else(|e| panic!("{e}"));
        let args = ServeArgs {
            config: Some(file.clone()),
            listen: Some("nowhere".into()),
            log: Some("loud".into()),
            request_timeout: Some(0),
            db: DatabaseArgs { database: Some("mysql://u:pw@h/d".into()), ..DatabaseArgs::default() },
            ..ServeArgs::default()
        };
        let e = Settings::load(&args, token(10)).err().map(|e| e.to_string()).unwrap_or_default();
        for needle in [
            "GENAI_LISTEN",
            "GENAI_LOG",
            "GENAI_REQUEST_TIMEOUT",
            "GENAI_DATABASE",
            "GENAI_OPERATOR_TOKEN",
            "at least 24",
        ] {
            assert!(e.contains(needle), "{needle} in {e}");
        }
        assert!(!e.contains(":pw@"), "{e}");
        std::fs::write(&file, "listen = \"127.0.0.1:1\"\nrequest_timout = 5\n").unwrap_or_else(|e| panic!("{e}"));
        let e = Settings::load(&ServeArgs { config: Some(file), ..ServeArgs::default() }, None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("request_timout"), "an unknown key is named: {e}");
    }

    #[test]
    fn the_public_url_is_checked_and_defaults_to_the_listen_address() {
        let file = std::env::temp_dir().join(format!("genai-settings-url-{}.toml", std::process::id()));
        std::fs::write(&file, "public_url = \"https://genai.example.com/\"\n").unwrap_or_else(|e| panic!("{e}"));
        let args = ServeArgs { config: Some(file.clone()), ..ServeArgs::default() };
        let s = Settings::load(&args, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.public_url.as_deref(), Some("https://genai.example.com"), "from the file, without the /");
        let flag = ServeArgs { public_url: Some("http://10.0.0.5:9000".into()), ..args.clone() };
        assert_eq!(Settings::load(&flag, None).map(|s| s.public_url), Ok(Some("http://10.0.0.5:9000".into())));
        for bad in ["genai.example.com", "ftp://x", "http://", "http://a b", "http://x/?q=1"] {
            let e = Settings::load(&ServeArgs { public_url: Some(bad.into()), ..args.clone() }, None)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains("GENAI_PUBLIC_URL"), "{bad}: {e}");
        }
        let at = |s: &str| s.parse::<std::net::SocketAddr>().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(public_url_of(at("127.0.0.1:8080")), "http://127.0.0.1:8080");
        assert_eq!(public_url_of(at("0.0.0.0:80")), "http://127.0.0.1:80");
        assert_eq!(public_url_of(at("[::]:8080")), "http://[::1]:8080");
    }

    #[test]
    fn the_operator_token_must_be_long_and_is_warned_about_below_32() {
        let file = std::env::temp_dir().join(format!("genai-settings-tok-{}.toml", std::process::id()));
        std::fs::write(&file, "").unwrap_or_else(|e| panic!("{e}"));
        let args = ServeArgs { config: Some(file), ..ServeArgs::default() };
        assert!(Settings::load(&args, token(23)).is_err());
        let s = Settings::load(&args, token(27)).unwrap_or_else(|e| panic!("{e}"));
        assert!(s.short_operator_token, "accepted with a warning");
        let s = Settings::load(&args, token(32)).unwrap_or_else(|e| panic!("{e}"));
        assert!(!s.short_operator_token);
        assert!(Settings::load(&args, Some("has space in it and is long enough!".into())).is_err());
    }
}
