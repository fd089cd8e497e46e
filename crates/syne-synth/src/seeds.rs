//! Seeds: scientific pages assigned to one of the paper's nine disciplines and cut into
//! snippets, and programming problems for code QA.
//!
//! A page's discipline comes from keyword rules (configurable; the defaults below): each
//! discipline's keywords are counted in the page's lower-cased words, and the discipline with
//! the most hits wins if it has at least `min_hits` and the page at least `min_words`; other
//! pages are not scientific enough and are counted, not used. A page becomes up to
//! `snippets_per_doc` snippets of at most `snippet_chars` characters, cut at paragraph or
//! sentence ends.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The paper's nine disciplines.
pub const DISCIPLINES: [&str; 9] =
    ["Mathematics", "Physics", "Chemistry", "Biology", "Astronomy", "Earth Science", "Medicine", "Computer Science", "General Education"];

/// Default keywords per discipline (lower-case words; a page's words are matched whole).
pub fn default_keywords() -> BTreeMap<String, Vec<String>> {
    let k = |d: &str, words: &str| (d.to_string(), words.split_whitespace().map(str::to_owned).collect());
    [
        k("Mathematics", "theorem proof equation integral derivative matrix polynomial algebra geometry probability function functions vector calculus prime integer variable variables linear series sum theorem lemma"),
        k("Physics", "energy force mass velocity acceleration momentum quantum particle electron field wave frequency thermodynamics gravity relativity photon magnetic electric physics"),
        k("Chemistry", "molecule molecules atom atoms chemical reaction compound compounds acid bond bonds ion ions oxidation electrons organic element elements chemistry solution"),
        k("Biology", "cell cells protein proteins gene genes dna species organism organisms evolution enzyme tissue membrane biology bacteria plant plants"),
        k("Astronomy", "star stars planet planets galaxy galaxies orbit solar telescope universe cosmic moon comet asteroid astronomy nebula"),
        k("Earth Science", "earth climate geology rock rocks ocean atmosphere volcano earthquake sediment mineral minerals tectonic weather glacier soil"),
        k("Medicine", "patient patients disease diseases treatment clinical symptoms drug drugs therapy diagnosis medical infection cancer blood surgery"),
        k("Computer Science", "algorithm algorithms data computer software program programming code function array memory network complexity python database compiler"),
        k("General Education", "history education society culture language literature philosophy art economy economic government law social political century"),
    ]
    .into_iter()
    .collect()
}

/// Seed selection settings (`[synth.seeds]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeedSettings {
    pub snippet_chars: usize,
    pub snippets_per_doc: usize,
    pub min_words: usize,
    pub min_hits: usize,
    /// Discipline → keywords (default: [`default_keywords`]).
    pub keywords: BTreeMap<String, Vec<String>>,
}

impl Default for SeedSettings {
    fn default() -> Self {
        SeedSettings { snippet_chars: 1500, snippets_per_doc: 1, min_words: 50, min_hits: 5, keywords: default_keywords() }
    }
}

/// The discipline of a page, with its keyword hits, when it is scientific enough.
pub fn discipline(text: &str, s: &SeedSettings) -> Option<(String, usize)> {
    let words = syne_data::text::simplified_words(text);
    if words.len() < s.min_words {
        return None;
    }
    let mut best: Option<(String, usize)> = None;
    for (d, kws) in &s.keywords {
        let hits = words.iter().filter(|w| kws.iter().any(|k| k == *w)).count();
        if hits >= s.min_hits && best.as_ref().is_none_or(|(_, b)| hits > *b) {
            best = Some((d.clone(), hits));
        }
    }
    best
}

/// Up to `count` snippets of at most `max_chars` characters: paragraphs and sentences are kept
/// whole where they fit (a longer sentence is cut at a character boundary). Each snippet is
/// `(start char, text)`.
pub fn snippets(text: &str, max_chars: usize, count: usize) -> Vec<(usize, String)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut start = 0;
    while out.len() < count && start < chars.len() {
        // Skip leading whitespace.
        while start < chars.len() && chars[start].is_whitespace() {
            start += 1;
        }
        if start >= chars.len() {
            break;
        }
        let end = (start + max_chars).min(chars.len());
        let mut cut = end;
        if end < chars.len() {
            // Prefer a paragraph end, then a sentence end, in the second half of the window.
            let window = &chars[start..end];
            let half = window.len() / 2;
            let para = (half..window.len()).rev().find(|&i| window[i] == '\n');
            let sentence = (half..window.len()).rev().find(|&i| matches!(window[i], '.' | '!' | '?' | '。' | '！' | '？'));
            cut = start + para.or(sentence.map(|i| i + 1)).unwrap_or(window.len());
        }
        let s: String = chars[start..cut].iter().collect();
        out.push((start, s.trim().to_string()));
        start = cut;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disciplines_by_keywords() {
        let s = SeedSettings { min_words: 5, min_hits: 2, ..Default::default() };
        assert_eq!(discipline("The enzyme binds the protein inside the cell membrane of bacteria.", &s).unwrap().0, "Biology");
        assert_eq!(discipline("The galaxy holds billions of stars and every planet orbits a star.", &s).unwrap().0, "Astronomy");
        assert_eq!(discipline("I went to the shop and bought some bread today.", &s), None);
        assert_eq!(discipline("too short", &s), None);
        assert_eq!(DISCIPLINES.len(), 9);
        assert!(DISCIPLINES.iter().all(|d| default_keywords().contains_key(*d)));
    }

    #[test]
    fn snippets_end_at_sentences() {
        let text = "First sentence is here. Second sentence follows it. Third one ends the paragraph.\nNew paragraph starts. And goes on.";
        let sn = snippets(text, 60, 3);
        assert_eq!(sn[0], (0, "First sentence is here. Second sentence follows it.".to_string()));
        assert!(sn[1].1.starts_with("Third one"));
        assert!(sn.iter().all(|(_, s)| s.chars().count() <= 60));
        assert_eq!(snippets(text, 1000, 2).len(), 1);
        assert!(snippets("", 10, 2).is_empty());
    }
}
