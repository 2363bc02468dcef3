//! Benchmark of the exact search (`bench/knowledge.sh` runs it next to FAISS; see
//! `bench/README.md`). A program, not a test: it asserts nothing about time.
//!
//! ```text
//! cargo run --release -p genai-knowledge --example knowledge_bench -- \
//!     --rows 100000 [--dim 384] [--queries 300] [--runs 5] [--k 5] [--data DIR]
//! ```
//!
//! It makes `rows` random unit vectors and `queries` random unit queries with a fixed seed
//! (the same on every run), and gives every row the metadata pair `category = c{row % 10}`, so
//! the filter `category = c3` keeps 10 % of the rows. With `--data DIR` it writes them there as
//! little-endian f32 (`vectors.f32`, `queries.f32`) for `bench/knowledge_faiss.py`, together
//! with its own top-5 answers (`ours_top5.txt`) so that the FAISS script can check that both
//! found the same neighbours.
//!
//! Measured, each `runs` times (the median of the runs is printed): the latency of one query
//! after another (p50, p99, queries/s) with no filter and with the filter, on one thread and on
//! every core; and the throughput of one single-threaded search per core in parallel (how a
//! busy server would run them). Printed as one JSON object per line.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use genai_knowledge::index::{ChunkAttrs, Filter, VectorIndex};
use genai_knowledge::wire::NameValue;

struct Options {
    rows: usize,
    dim: usize,
    queries: usize,
    runs: usize,
    k: usize,
    data: Option<PathBuf>,
}

fn parse_options() -> Result<Options, String> {
    let mut o = Options { rows: 100_000, dim: 384, queries: 0, runs: 5, k: 5, data: None };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || value.parse::<usize>().map_err(|_| format!("{flag}: {value:?} is not a number"));
        match flag.as_str() {
            "--rows" => o.rows = number()?,
            "--dim" => o.dim = number()?,
            "--queries" => o.queries = number()?,
            "--runs" => o.runs = number()?.max(1),
            "--k" => o.k = number()?,
            "--data" => o.data = Some(PathBuf::from(value)),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if o.queries == 0 {
        // About 4·10⁹ floats scanned per run: enough queries for a stable p99 at small sizes,
        // a bearable run time at a million rows.
        o.queries = (4_000_000_000 / (o.rows.max(1) * o.dim.max(1))).clamp(30, 1_000);
    }
    Ok(o)
}

/// splitmix64: a small, fast, fixed-seed generator, so the data is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn float(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// `count` random unit vectors of `dim` dimensions, one after another.
fn unit_vectors(rng: &mut Rng, count: usize, dim: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(count * dim);
    let mut v = vec![0f32; dim];
    for _ in 0..count {
        for x in &mut v {
            *x = rng.float();
        }
        let norm = v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
        out.extend(v.iter().map(|&x| (f64::from(x) / norm) as f32));
    }
    out
}

fn write_f32(path: &Path, values: &[f32]) -> std::io::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for x in values {
        file.write_all(&x.to_le_bytes())?;
    }
    file.flush()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

struct RunFigures {
    p50_ms: f64,
    p99_ms: f64,
    qps: f64,
}

/// One query after another on `threads` threads per query.
fn sequential(index: &VectorIndex, queries: &[f32], k: usize, filter: &Filter, threads: usize) -> RunFigures {
    let dim = index.dimension();
    let mut latencies = Vec::with_capacity(queries.len() / dim);
    let start = Instant::now();
    for q in queries.chunks_exact(dim) {
        let t = Instant::now();
        let hits = index.search_with_threads(q, k, filter, threads);
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(hits.ok());
    }
    let total = start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    RunFigures {
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        qps: latencies.len() as f64 / total,
    }
}

/// `clients` threads, each running single-threaded searches over its share of the queries.
fn concurrent(index: &VectorIndex, queries: &[f32], k: usize, filter: &Filter, clients: usize) -> f64 {
    let dim = index.dimension();
    let all: Vec<&[f32]> = queries.chunks_exact(dim).collect();
    let start = Instant::now();
    std::thread::scope(|scope| {
        for part in all.chunks(all.len().div_ceil(clients)) {
            scope.spawn(move || {
                for q in part {
                    std::hint::black_box(index.search_with_threads(q, k, filter, 1).ok());
                }
            });
        }
    });
    all.len() as f64 / start.elapsed().as_secs_f64()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let o = parse_options()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let t = Instant::now();
    let mut rng = Rng(0x6b6e_6f77_6c65_6467);
    let vectors = unit_vectors(&mut rng, o.rows, o.dim);
    let queries = unit_vectors(&mut rng, o.queries, o.dim);
    let generate_s = t.elapsed().as_secs_f64();

    let categories: Vec<[NameValue; 1]> = (0..10).map(|c| [NameValue::new("category", format!("c{c}"))]).collect();
    let t = Instant::now();
    let mut index = VectorIndex::new(o.dim)?;
    index.reserve(o.rows);
    for (row, v) in vectors.chunks_exact(o.dim).enumerate() {
        let attrs = ChunkAttrs { mx_object_id: "", metadata: &categories[row % 10], labels: &[] };
        index.insert(row as u64, v, attrs)?;
    }
    let build_s = t.elapsed().as_secs_f64();
    println!(
        "{{\"impl\":\"genai-knowledge\",\"rows\":{},\"dim\":{},\"queries\":{},\"runs\":{},\"k\":{},\"cores\":{cores},\
         \"index_inserts_per_s\":{:.0},\"index_memory_mb\":{:.1},\"generate_s\":{generate_s:.2}}}",
        o.rows,
        o.dim,
        o.queries,
        o.runs,
        o.k,
        o.rows as f64 / build_s,
        index.memory_bytes() as f64 / 1e6
    );

    let filters =
        [("none", Filter::default()), ("category=c3", Filter { metadata: categories[3].to_vec(), labels: vec![] })];

    if let Some(dir) = &o.data {
        std::fs::create_dir_all(dir)?;
        write_f32(&dir.join("vectors.f32"), &vectors)?;
        write_f32(&dir.join("queries.f32"), &queries)?;
        // Our answers for the first 100 queries, one line per query and filter: the FAISS script
        // compares them with its own.
        let mut answers = std::io::BufWriter::new(std::fs::File::create(dir.join("ours_top5.txt"))?);
        for (name, filter) in &filters {
            for q in queries.chunks_exact(o.dim).take(100) {
                let keys: Vec<String> = index.search(q, 5, filter)?.iter().map(|h| h.key.to_string()).collect();
                writeln!(answers, "{name} {}", keys.join(","))?;
            }
        }
        answers.flush()?;
    }
    drop(vectors);

    for (name, filter) in &filters {
        // Warm up: page the vectors in, start the threads once.
        let warm = &queries[..o.dim * o.queries.min(10)];
        sequential(&index, warm, o.k, filter, cores);
        for threads in [1, cores] {
            let runs: Vec<RunFigures> =
                (0..o.runs).map(|_| sequential(&index, &queries, o.k, filter, threads)).collect();
            println!(
                "{{\"impl\":\"genai-knowledge\",\"rows\":{},\"filter\":\"{name}\",\"mode\":\"one query at a time\",\
                 \"threads\":{threads},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"qps\":{:.1}}}",
                o.rows,
                median(runs.iter().map(|r| r.p50_ms).collect()),
                median(runs.iter().map(|r| r.p99_ms).collect()),
                median(runs.iter().map(|r| r.qps).collect()),
            );
        }
        let qps: Vec<f64> = (0..o.runs).map(|_| concurrent(&index, &queries, o.k, filter, cores)).collect();
        println!(
            "{{\"impl\":\"genai-knowledge\",\"rows\":{},\"filter\":\"{name}\",\"mode\":\"{cores} clients, 1 thread each\",\
             \"threads\":{cores},\"qps\":{:.1}}}",
            o.rows,
            median(qps)
        );
    }
    Ok(())
}
