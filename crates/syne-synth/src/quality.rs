//! From raw generations to training documents: `[Problem]` / `[Solution]` parsing, rejection of
//! truncated and malformed outputs, length and language filters, MinHash near-dedup among the
//! generated items and n-gram decontamination against benchmark test items — every rejection
//! counted by reason.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use syne_data::dedup::{content_hash, decide, Decision, DedupConfig, MinHasher};
use syne_data::langid::{detect, Lang};

/// Why a generation did not become a training document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reject {
    /// The request failed after its retries.
    RequestFailed,
    /// The server stopped at the token limit.
    Truncated,
    /// No `[Solution]` section (or an empty problem or solution).
    Malformed,
    /// The problem or the solution has fewer words than its minimum (`min_problem_words`, `min_solution_words`).
    TooShort,
    /// The solution has more words than `filters.max_solution_words`.
    TooLong,
    /// The text is not in the expected language.
    WrongLanguage,
    /// A near-duplicate of an item kept before it.
    NearDuplicate,
    /// Shares an n-gram with a benchmark test item.
    Contaminated,
}

pub use syne_recipe::synth::SynthFilters as Filters;

/// A parsed question/answer pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QaPair {
    /// The `[Problem]` section.
    pub problem: String,
    /// The `[Solution]` section.
    pub solution: String,
}

impl QaPair {
    /// The training document: both sections with their markers.
    pub fn text(&self) -> String {
        format!("[Problem]\n{}\n\n[Solution]\n{}", self.problem, self.solution)
    }
}

/// Parse a generation (the prompt ends with `[Problem]`, so the text may or may not repeat
/// that marker) into a pair; `finish_reason == "length"` means it was cut.
pub fn parse(text: &str, finish_reason: Option<&str>) -> Result<QaPair, Reject> {
    if finish_reason == Some("length") {
        return Err(Reject::Truncated);
    }
    let body = text.trim();
    let body = body.strip_prefix("[Problem]").unwrap_or(body);
    let Some((problem, solution)) = body.split_once("[Solution]") else { return Err(Reject::Malformed) };
    // A second [Problem] starts an unrequested extra pair: keep the first only.
    let solution = solution.split("[Problem]").next().unwrap_or("");
    let (problem, solution) = (problem.trim(), solution.trim());
    if problem.is_empty() || solution.is_empty() {
        return Err(Reject::Malformed);
    }
    Ok(QaPair { problem: problem.to_string(), solution: solution.to_string() })
}

fn word_count(s: &str) -> usize {
    syne_data::text::words(s).count()
}

/// Length and language checks of one pair.
pub fn check(pair: &QaPair, f: &Filters) -> Result<(), Reject> {
    let (p, s) = (word_count(&pair.problem), word_count(&pair.solution));
    if p < f.min_problem_words || s < f.min_solution_words {
        return Err(Reject::TooShort);
    }
    if s > f.max_solution_words {
        return Err(Reject::TooLong);
    }
    let want = match f.language.as_str() {
        "" => None,
        "en" => Some(Lang::En),
        "zh" => Some(Lang::Zh),
        _ => Some(Lang::Other),
    };
    if want.is_some_and(|w| detect(&pair.text()).lang != w) {
        return Err(Reject::WrongLanguage);
    }
    Ok(())
}

fn ngram_hashes(text: &str, n: usize) -> Vec<u64> {
    let words: Vec<u64> = syne_data::text::simplified_words(text)
        .iter()
        .map(|w| syne_data::text::mix64(w.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))))
        .collect();
    syne_data::text::ngram_hashes(&words, n)
}

/// The word n-grams of benchmark test items (lower-cased, punctuation-free words, as
/// syne-data's simplified words).
pub struct Decontaminator {
    n: usize,
    grams: HashSet<u64>,
    /// Benchmark test items read.
    pub items: usize,
}

impl Decontaminator {
    /// The n-grams (`n` simplified words) of every benchmark text in `texts`.
    pub fn new<'a>(texts: impl IntoIterator<Item = &'a str>, n: usize) -> Decontaminator {
        let mut d = Decontaminator { n: n.max(1), grams: HashSet::new(), items: 0 };
        for t in texts {
            d.items += 1;
            d.grams.extend(ngram_hashes(t, d.n));
        }
        d
    }

    /// Whether `text` shares an n-gram with a test item.
    pub fn contaminated(&self, text: &str) -> bool {
        ngram_hashes(text, self.n).iter().any(|h| self.grams.contains(h))
    }

    /// Distinct n-grams held.
    pub fn ngrams(&self) -> usize {
        self.grams.len()
    }
}

/// Near-duplicate decisions among `texts`, first occurrence kept.
pub fn near_duplicates(texts: &[String]) -> Vec<bool> {
    let cfg = DedupConfig::default();
    let hasher = MinHasher::new(&cfg);
    let hashes: Vec<u128> = texts.iter().map(|t| content_hash(t)).collect();
    let keys: Vec<u64> = texts.iter().flat_map(|t| hasher.band_keys(&hasher.signature(t))).collect();
    decide(texts.len(), &hashes, true, &keys, hasher.bands()).into_iter().map(|d| d != Decision::Keep).collect()
}

/// Counts per rejection reason.
pub type RejectCounts = BTreeMap<Reject, u64>;

#[cfg(test)]
mod tests {
    use super::*;

    const SOLUTION: &str = "We apply Newton's second law step by step. The net force on the block equals its mass times its acceleration, so we first compute the force of gravity along the incline, then subtract friction, and finally divide by the mass to find the acceleration of the block down the slope, which is two metres per second squared.";

    #[test]
    fn parsing_and_rejections() {
        let text = format!("A block of mass 2 kg slides down a frictionless incline of 30 degrees. What is its acceleration?\n\n[Solution]\n{SOLUTION}");
        let p = parse(&text, Some("stop")).unwrap();
        assert!(p.problem.starts_with("A block") && p.solution.starts_with("We apply"));
        assert!(p.text().starts_with("[Problem]\nA block") && p.text().contains("\n\n[Solution]\nWe apply"));
        assert_eq!(parse(&format!("[Problem] {text}"), None).unwrap(), p);
        assert_eq!(parse(&format!("{text}\n[Problem] another one"), None).unwrap(), p);
        assert_eq!(parse(&text, Some("length")), Err(Reject::Truncated));
        assert_eq!(parse("just text", None), Err(Reject::Malformed));
        assert_eq!(parse("[Solution] x", None), Err(Reject::Malformed));
        let f = Filters::default();
        assert_eq!(check(&p, &f), Ok(()));
        assert_eq!(check(&QaPair { problem: p.problem.clone(), solution: "Two.".into() }, &f), Err(Reject::TooShort));
        assert_eq!(check(&QaPair { problem: p.problem.clone(), solution: SOLUTION.repeat(20) }, &f), Err(Reject::TooLong));
        let zh = QaPair {
            problem: "一个质量为两千克的木块沿着倾角为三十度的光滑斜面下滑，求它的加速度是多少？".into(),
            solution: "我们一步一步地应用牛顿第二定律。".repeat(10),
        };
        assert_eq!(check(&zh, &Filters { min_problem_words: 1, ..f.clone() }), Err(Reject::WrongLanguage));
        assert_eq!(check(&zh, &Filters { min_problem_words: 1, language: "zh".into(), ..f }), Ok(()));
    }

    #[test]
    fn decontamination_and_dedup() {
        let test_item = "Which of the following is the body cavity that contains the pituitary gland? A. Abdominal B. Cranial C. Pleural D. Spinal";
        let d = Decontaminator::new([test_item], 13);
        assert_eq!(d.items, 1);
        assert!(d.contaminated("Problem: which of the following is the body cavity that contains the pituitary gland? a. abdominal b. cranial, explained"));
        assert!(!d.contaminated("The pituitary gland sits in the cranial cavity, below the brain."));
        let texts = vec![
            SOLUTION.to_string(),
            SOLUTION.replace("two metres", "2 metres"),
            "Something else entirely about chemistry and its many reactions.".to_string(),
        ];
        assert_eq!(near_duplicates(&texts), vec![false, true, false]);
    }
}
