//! Seeds: scientific pages assigned to one of the paper's nine disciplines and cut into
//! snippets, and programming problems for code QA.
//!
//! A page's discipline comes from keyword rules (configurable; the defaults below): each
//! discipline's keywords are counted in the page's lower-cased words, and the discipline with
//! the most hits wins if it has at least `min_hits` and the page at least `min_words`; other
//! pages are not scientific enough and are counted, not used. A page becomes up to
//! `snippets_per_doc` snippets of at most `snippet_chars` characters, cut at paragraph or
//! sentence ends.

pub use syne_recipe::synth::{default_keywords, SeedSettings, DISCIPLINES};

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
