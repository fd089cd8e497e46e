//! The request journal: one JSON line per finished request ([`Completed`]), appended as each
//! finishes. Requests are content-addressed (the key hashes prompt, model and parameters), so a
//! restarted run skips every key already in the journal — done or failed — and neither loses nor
//! repeats a completed request. A crash can leave only the last line half-written: it is cut off
//! on open (and counted); damage anywhere else is an error naming the line.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::client::Completed;
use crate::error::{Result, SynthError};

/// The content address of a request: sha256 of everything that determines its answer.
pub fn request_key(model: &str, prompt: &str, max_tokens: u32, temperature: f64, top_p: f64, seed: Option<u64>) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(&serde_json::json!([model, prompt, max_tokens, temperature, top_p, seed])).expect("json"));
    hex::encode(h.finalize())
}

/// An open journal.
pub struct Journal {
    path: PathBuf,
    file: File,
    /// Entries by key (the results themselves: the output is assembled from them).
    entries: HashMap<String, Completed>,
    /// A half-written last line cut off on open.
    pub repaired_tail: bool,
}

impl Journal {
    /// Open (or create) the journal at `path`, reading what an earlier run finished.
    pub fn open(path: &Path) -> Result<Journal> {
        let io = |e: std::io::Error| SynthError::Data(syne_data::DataError::io(path, "cannot use the journal", e));
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(e)),
        };
        let mut entries = HashMap::new();
        let mut good = 0usize;
        let mut repaired_tail = false;
        let mut line_no = 0;
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            line_no += 1;
            let (line, complete) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], true),
                None => (rest, false),
            };
            match serde_json::from_slice::<Completed>(line) {
                Ok(c) if complete => {
                    good += line.len() + 1;
                    entries.insert(c.key.clone(), c);
                }
                // A line without its newline, or a damaged last line: the write a crash cut.
                _ if !complete || line.len() + 1 == rest.len() => {
                    repaired_tail = true;
                    break;
                }
                Err(e) => return Err(SynthError::Journal { path: path.to_path_buf(), line: line_no, detail: format!("damaged record: {e}") }),
                Ok(_) => unreachable!("complete lines are handled above"),
            }
            rest = &rest[(line.len() + 1).min(rest.len())..];
        }
        if repaired_tail {
            let f = OpenOptions::new().write(true).open(path).map_err(io)?;
            f.set_len(good as u64).map_err(io)?;
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
        Ok(Journal { path: path.to_path_buf(), file, entries, repaired_tail })
    }

    /// Whether request `key` has finished in this or an earlier run.
    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// The finished request `key`.
    pub fn get(&self, key: &str) -> Option<&Completed> {
        self.entries.get(key)
    }

    /// Finished requests.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No request has finished.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Append one finished request (one `write` of a whole line, so a kill leaves at most a
    /// half-written last line).
    pub fn append(&mut self, c: Completed) -> Result<()> {
        let mut line = serde_json::to_vec(&c).expect("json");
        line.push(b'\n');
        self.file.write_all(&line).map_err(|e| SynthError::Data(syne_data::DataError::io(&self.path, "cannot append to the journal", e)))?;
        self.entries.insert(c.key.clone(), c);
        Ok(())
    }

    /// Flush the journal to disk.
    pub fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(|e| SynthError::Data(syne_data::DataError::io(&self.path, "cannot sync the journal", e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Outcome;

    fn done(key: &str) -> Completed {
        Completed {
            key: key.into(),
            attempts: 1,
            outcome: Outcome::Done { text: format!("text {key}"), finish_reason: Some("stop".into()), completion_tokens: 3, endpoint: 0 },
        }
    }

    #[test]
    fn reopen_keeps_entries_and_cuts_a_half_written_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.jsonl");
        let mut j = Journal::open(&p).unwrap();
        j.append(done("a")).unwrap();
        j.append(Completed { key: "b".into(), attempts: 6, outcome: Outcome::Failed { error: "HTTP 500".into() } }).unwrap();
        drop(j);
        // A crash in the middle of the third write.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(br#"{"key":"c","attempts":1,"status":"do"#).unwrap();
        drop(f);
        let mut j = Journal::open(&p).unwrap();
        assert!(j.repaired_tail && j.len() == 2 && j.contains("a") && j.contains("b") && !j.contains("c"));
        j.append(done("c")).unwrap();
        drop(j);
        let j = Journal::open(&p).unwrap();
        assert!(!j.repaired_tail && j.len() == 3);
        assert_eq!(j.get("c"), Some(&done("c")));
        // Damage before the last line is an error naming the line.
        let text = std::fs::read_to_string(&p).unwrap().replacen("{\"key\":\"b\"", "{\"kex\":\"b\"", 1);
        std::fs::write(&p, text).unwrap();
        let e = Journal::open(&p).err().unwrap().to_string();
        assert!(e.contains("j.jsonl:2"), "{e}");
    }

    #[test]
    fn keys_address_content() {
        let k = request_key("m", "p", 10, 0.7, 0.95, Some(1));
        assert_eq!(k.len(), 64);
        assert_eq!(k, request_key("m", "p", 10, 0.7, 0.95, Some(1)));
        assert_ne!(k, request_key("m", "p", 10, 0.7, 0.95, Some(2)));
        assert_ne!(k, request_key("m", "p ", 10, 0.7, 0.95, Some(1)));
    }
}
