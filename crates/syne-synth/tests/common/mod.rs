//! A local OpenAI-compatible test server with a seeded mix of faults (shared by syne-synth's
//! tests and benchmark and syne-cli's kill-and-resume test).
//!
//! Each prompt's behaviour is fixed by a hash of the prompt, and the number of times the server
//! has seen it: so a client killed and restarted meets the same outcome per request.
//! - 1 in 10: HTTP 500 every time (fails after its retries);
//! - 1 in 10: 429 on the first two attempts;
//! - 1 in 10: hangs past the client's timeout on the first attempt;
//! - 1 in 10: closes the connection without answering on the first attempt;
//! - 1 in 10: malformed JSON on the first attempt;
//! - 1 in 10: an answer cut at the token limit (`finish_reason: "length"`) every time;
//! - the rest: a well-formed answer at once.
//!
//! With `faults = false` every request is answered at once (the throughput benchmark).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct FaultServer {
    pub url: String,
    /// Per prompt hash: requests received and the prompt's fault class.
    pub seen: Arc<Mutex<HashMap<u64, (u32, u64)>>>,
    pub requests: Arc<AtomicU64>,
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The kind of fault a prompt gets (0..10: see the module docs; 0 = always 500, 5 = truncated).
pub fn fault_class(prompt: &str) -> u64 {
    mix(fnv(prompt)) % 10
}

const WORDS: &[&str] = &[
    "energy",
    "velocity",
    "reaction",
    "molecule",
    "equation",
    "integral",
    "cell",
    "protein",
    "orbit",
    "planet",
    "pressure",
    "volume",
    "temperature",
    "current",
    "voltage",
    "circuit",
    "gene",
    "enzyme",
    "acid",
    "base",
    "force",
    "mass",
    "distance",
    "time",
    "rate",
    "constant",
    "density",
    "wave",
    "frequency",
    "field",
    "charge",
    "particle",
    "solution",
    "mixture",
    "compound",
    "element",
    "series",
    "matrix",
    "vector",
    "function",
    "limit",
    "derivative",
    "probability",
    "sample",
];

/// A deterministic, well-formed answer for a prompt: a problem and a ~60-word solution.
pub fn answer(prompt: &str) -> String {
    let mut h = fnv(prompt);
    let mut word = || {
        h = mix(h);
        WORDS[(h % WORDS.len() as u64) as usize]
    };
    let problem: Vec<&str> = (0..12).map(|_| word()).collect();
    let solution: Vec<&str> = (0..60).map(|_| word()).collect();
    format!(" Compute the {} for the given system.\n\n[Solution]\nFirst we note that {}.", problem.join(" "), solution.join(" "))
}

fn respond(stream: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    write!(stream, "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{body}", body.len())?;
    stream.flush()
}

fn serve(stream: TcpStream, faults: bool, hang: Duration, seen: Arc<Mutex<HashMap<u64, (u32, u64)>>>, requests: Arc<AtomicU64>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut stream = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        requests.fetch_add(1, Ordering::Relaxed);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let chat = line.contains("/chat/completions");
        let prompt = if chat { v["messages"][0]["content"].as_str().unwrap_or("").to_string() } else { v["prompt"].as_str().unwrap_or("").to_string() };
        let class = if faults { fault_class(&prompt) } else { 9 };
        let attempt = {
            let mut s = seen.lock().unwrap();
            let n = s.entry(fnv(&prompt)).or_insert((0, class));
            n.0 += 1;
            n.0
        };
        let ok = |text: &str, finish: &str| {
            let choice = if chat {
                serde_json::json!({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish})
            } else {
                serde_json::json!({"index": 0, "text": text, "finish_reason": finish})
            };
            serde_json::json!({"id": "x", "object": "text_completion", "choices": [choice], "usage": {"completion_tokens": text.split_whitespace().count()}})
                .to_string()
        };
        let r = match (class, attempt) {
            (0, _) => respond(&mut stream, "500 Internal Server Error", "{\"error\":\"boom\"}"),
            (1, 1 | 2) => respond(&mut stream, "429 Too Many Requests", "{\"error\":\"slow down\"}"),
            (2, 1) => {
                std::thread::sleep(hang);
                return;
            }
            (3, 1) => return,
            (4, 1) => respond(&mut stream, "200 OK", "{\"choices\": [{\"text\": \"unterminated"),
            (5, _) => respond(&mut stream, "200 OK", &ok(&answer(&prompt)[..40], "length")),
            _ => respond(&mut stream, "200 OK", &ok(&answer(&prompt), "stop")),
        };
        if r.is_err() {
            return;
        }
    }
}

impl FaultServer {
    /// Distinct prompts seen with fault class `class`.
    pub fn prompts_of_class(&self, class: u64) -> usize {
        self.seen.lock().unwrap().values().filter(|(_, c)| *c == class).count()
    }

    /// Start on a free loopback port; `hang` is how long a hanging answer waits.
    pub fn start(faults: bool, hang: Duration) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let requests = Arc::new(AtomicU64::new(0));
        let (s, r) = (seen.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (s, r) = (s.clone(), r.clone());
                let _ = stream.set_nodelay(true);
                std::thread::spawn(move || serve(stream, faults, hang, s, r));
            }
        });
        FaultServer { url, seen, requests }
    }
}
