//! `genai-fake-upstream --port N [--static]`: the fake OpenAI-compatible upstream as a program.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use clap::Parser;
use genai_fake_upstream::{Behaviour, FakeUpstream};

/// A fake OpenAI-compatible upstream with exact, predictable usage.
#[derive(Debug, Parser)]
#[command(name = "genai-fake-upstream", version)]
struct Args {
    /// Port to listen on (0: a free one, printed at start).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Answer every call with one fixed answer, as fast as possible (for benchmarks).
    #[arg(long = "static")]
    fixed: bool,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        builder.worker_threads(n.max(1));
    }
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let behaviour = if args.fixed { Behaviour::Static } else { Behaviour::Faithful };
        match FakeUpstream::bind(SocketAddr::new(args.host, args.port), behaviour).await {
            Ok(up) => {
                println!("fake upstream ({behaviour:?}) listening on {}", up.base_url());
                up.run_forever().await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot listen on {}:{}: {e}", args.host, args.port);
                ExitCode::FAILURE
            }
        }
    })
}
