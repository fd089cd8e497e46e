//! Client overhead: requests per second against the local test server answering at once (no
//! faults), and peak memory at two request counts (it must not grow with their number).
//!
//! ```text
//! cargo bench -p syne-synth --bench client -- [--concurrency N]
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use syne_synth::client::{run, ClientSettings, Counters, GenRequest};

fn peak_rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 1024.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let concurrency = args.iter().position(|a| a == "--concurrency").and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(8);
    let server = common::FaultServer::start(false, Duration::ZERO);
    let settings = ClientSettings {
        endpoints: vec![server.url.clone()],
        model: "m".into(),
        chat: false,
        api_key: None,
        concurrency,
        timeout: Duration::from_secs(10),
        max_retries: 3,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
    };
    for n in [20_000usize, 100_000] {
        let requests = (0..n).map(|i| GenRequest {
            key: format!("{i:016x}"),
            prompt: format!("prompt number {i} about physics"),
            max_tokens: 64,
            temperature: 0.0,
            top_p: 1.0,
            seed: None,
        });
        let counters = Counters::default();
        let mut finished = 0u64;
        let t = Instant::now();
        run(&settings, requests, &counters, |_| finished += 1).unwrap();
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{n} requests, concurrency {concurrency}: {secs:.2} s = {:.0} requests/s; peak RSS {:.1} MiB (client and server in one process)",
            n as f64 / secs,
            peak_rss_mib()
        );
        assert_eq!(finished, n as u64);
    }
}
