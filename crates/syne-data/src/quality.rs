//! Heuristic quality filters (Gopher-style), CJK-aware.
//!
//! Every rule is optional (`None` disables it) and has a stable name that the pipeline uses to
//! count what it dropped. Lengths are counted in characters, never bytes, and "words" follow
//! [`crate::text::words`]: a Chinese character is a word, so a Chinese document is judged on
//! the same scale as an English one. For CJK-dominant documents the n-gram sizes of the
//! repetition rules are multiplied by `cjk_ngram_scale` (a Chinese word is about two
//! characters), so that a 5-gram rule compares phrases of similar length in both languages.

use xxhash_rust::xxh3::xxh3_64;

use crate::text::{is_cjk, ngram_hashes, words, PrehashedMap};

pub use syne_recipe::prepare::QualityConfig;

fn is_plain_punct(c: char) -> bool {
    matches!(
        c,
        '.' | ','
            | ';'
            | ':'
            | '!'
            | '?'
            | '\''
            | '"'
            | '('
            | ')'
            | '-'
            | '['
            | ']'
            | '，'
            | '。'
            | '！'
            | '？'
            | '、'
            | '；'
            | '：'
            | '“'
            | '”'
            | '‘'
            | '’'
            | '（'
            | '）'
            | '《'
            | '》'
            | '…'
            | '—'
            | '·'
            | '「'
            | '」'
            | '『'
            | '』'
            | '【'
            | '】'
    )
}

fn frac(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Check `text` against every enabled rule, cheapest first; `Err(rule_name)` for the first rule
/// that fails.
pub fn check(text: &str, cfg: &QualityConfig) -> Result<(), &'static str> {
    // Character counts (one pass).
    let (mut chars, mut cjk, mut digits, mut symbols) = (0usize, 0usize, 0usize, 0usize);
    for c in text.chars() {
        if c.is_whitespace() {
            continue;
        }
        chars += 1;
        if is_cjk(c) {
            cjk += 1;
        } else if c.is_ascii_digit() || c.is_numeric() {
            digits += 1;
        } else if !c.is_alphanumeric() && !is_plain_punct(c) {
            symbols += 1;
        }
    }
    if cfg.min_chars.is_some_and(|m| chars < m) {
        return Err("min_chars");
    }
    if cfg.max_chars.is_some_and(|m| chars > m) {
        return Err("max_chars");
    }
    if cfg.max_digit_frac.is_some_and(|m| frac(digits, chars) > m) {
        return Err("max_digit_frac");
    }
    if cfg.max_symbol_frac.is_some_and(|m| frac(symbols, chars) > m) {
        return Err("max_symbol_frac");
    }

    let ws: Vec<&str> = words(text).collect();
    let n_words = ws.len();
    if cfg.min_words.is_some_and(|m| n_words < m) {
        return Err("min_words");
    }
    if cfg.max_words.is_some_and(|m| n_words > m) {
        return Err("max_words");
    }
    let cjk_dominant = cjk * 2 > n_words;
    if let Some((lo, hi)) = cfg.mean_word_length {
        if !cjk_dominant {
            let (n, total) = ws.iter().filter(|w| !w.chars().next().is_some_and(is_cjk)).fold((0usize, 0usize), |(n, t), w| (n + 1, t + w.chars().count()));
            if n > 0 {
                let mean = total as f64 / n as f64;
                if mean < lo || mean > hi {
                    return Err("mean_word_length");
                }
            }
        }
    }
    if let Some(m) = cfg.max_hash_ellipsis_ratio {
        let hashes = text.matches('#').count();
        let ellipses = text.matches("...").count() + text.matches('…').count();
        if frac(hashes + ellipses, n_words) > m {
            return Err("max_hash_ellipsis_ratio");
        }
    }
    if let Some(m) = cfg.min_alpha_words_frac {
        let alpha = ws.iter().filter(|w| w.chars().any(|c| c.is_alphabetic())).count();
        if frac(alpha, n_words) < m {
            return Err("min_alpha_words_frac");
        }
    }

    // Line and paragraph rules.
    let lines: Vec<&str> = text.split('\n').map(str::trim).filter(|l| !l.is_empty()).collect();
    if let Some(m) = cfg.max_bullet_lines_frac {
        let bullets = lines.iter().filter(|l| l.starts_with(['•', '●', '○', '■', '□', '▪', '▫', '–', '*', '-', '·'])).count();
        if frac(bullets, lines.len()) > m {
            return Err("max_bullet_lines_frac");
        }
    }
    if let Some(m) = cfg.max_ellipsis_lines_frac {
        let ell = lines.iter().filter(|l| l.ends_with("...") || l.ends_with('…')).count();
        if frac(ell, lines.len()) > m {
            return Err("max_ellipsis_lines_frac");
        }
    }
    if cfg.max_dup_line_frac.is_some() || cfg.max_dup_line_char_frac.is_some() {
        let (dup, dup_chars, total_chars) = duplicates(&lines);
        if cfg.max_dup_line_frac.is_some_and(|m| frac(dup, lines.len()) > m) {
            return Err("max_dup_line_frac");
        }
        if cfg.max_dup_line_char_frac.is_some_and(|m| frac(dup_chars, total_chars) > m) {
            return Err("max_dup_line_char_frac");
        }
    }
    if cfg.max_dup_para_frac.is_some() || cfg.max_dup_para_char_frac.is_some() {
        let paras: Vec<&str> = text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()).collect();
        let (dup, dup_chars, total_chars) = duplicates(&paras);
        if cfg.max_dup_para_frac.is_some_and(|m| frac(dup, paras.len()) > m) {
            return Err("max_dup_para_frac");
        }
        if cfg.max_dup_para_char_frac.is_some_and(|m| frac(dup_chars, total_chars) > m) {
            return Err("max_dup_para_char_frac");
        }
    }

    // N-gram repetition over words.
    if cfg.top_ngram_char_frac.is_empty() && cfg.dup_ngram_char_frac.is_empty() {
        return Ok(());
    }
    let scale = if cjk_dominant { cfg.cjk_ngram_scale.max(1) } else { 1 };
    let word_hash: Vec<u64> = ws.iter().map(|w| xxh3_64(w.as_bytes())).collect();
    let word_len: Vec<usize> = ws.iter().map(|w| w.chars().count()).collect();
    let total: usize = word_len.iter().sum();
    for &(n, max) in &cfg.top_ngram_char_frac {
        let n = n * scale;
        if n == 0 || ws.len() < n {
            continue;
        }
        let counts = ngram_counts(&ngram_hashes(&word_hash, n));
        // Ties go to the earliest n-gram, so the verdict never depends on hash-map order.
        if let Some(&(count, first)) = counts.values().max_by_key(|(c, first)| (*c, std::cmp::Reverse(*first))) {
            if count > 1 {
                let len: usize = word_len[first..first + n].iter().sum();
                if frac(count * len, total) > max {
                    return Err("top_ngram_char_frac");
                }
            }
        }
    }
    for &(n, max) in &cfg.dup_ngram_char_frac {
        let n = n * scale;
        if n == 0 || ws.len() < n {
            continue;
        }
        let grams = ngram_hashes(&word_hash, n);
        let counts = ngram_counts(&grams);
        let mut covered = vec![false; ws.len()];
        for (i, g) in grams.iter().enumerate() {
            if counts[g].0 > 1 {
                covered[i..i + n].iter_mut().for_each(|c| *c = true);
            }
        }
        let dup: usize = covered.iter().zip(&word_len).filter(|(c, _)| **c).map(|(_, l)| l).sum();
        if frac(dup, total) > max {
            return Err("dup_ngram_char_frac");
        }
    }
    Ok(())
}

/// n-gram hash -> (count, first position).
fn ngram_counts(grams: &[u64]) -> PrehashedMap<u64, (usize, usize)> {
    let mut counts: PrehashedMap<u64, (usize, usize)> = PrehashedMap::with_capacity_and_hasher(grams.len(), Default::default());
    for (i, g) in grams.iter().enumerate() {
        counts.entry(*g).or_insert((0, i)).0 += 1;
    }
    counts
}

/// (number of repeated items, characters in repeated items, total characters).
fn duplicates(items: &[&str]) -> (usize, usize, usize) {
    let mut seen: PrehashedMap<u64, ()> = PrehashedMap::with_capacity_and_hasher(items.len(), Default::default());
    let (mut dup, mut dup_chars, mut total) = (0, 0, 0);
    for item in items {
        let len = item.chars().count();
        total += len;
        if seen.insert(xxh3_64(item.as_bytes()), ()).is_some() {
            dup += 1;
            dup_chars += len;
        }
    }
    (dup, dup_chars, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EN: &str = "The mitochondrion is an organelle found in the cells of most eukaryotes. \
        It generates most of the chemical energy needed to power the biochemical reactions of the cell. \
        Chemical energy produced by mitochondria is stored in a small molecule called adenosine triphosphate.";
    const ZH: &str = "线粒体是一种存在于大多数真核细胞中的细胞器，由两层膜包被。\
        它是细胞中制造能量的结构，是细胞进行有氧呼吸的主要场所，被称为细胞的动力车间。\
        线粒体拥有自身的遗传物质和遗传体系，但其基因组大小有限。";

    #[test]
    fn clean_english_and_chinese_pass() {
        let cfg = QualityConfig::default();
        assert_eq!(check(EN, &cfg), Ok(()));
        assert_eq!(check(ZH, &cfg), Ok(()));
    }

    #[test]
    fn chinese_length_is_counted_in_characters() {
        // 20 Chinese characters with no spaces: 20 words, not 1.
        let cfg = QualityConfig { min_words: Some(20), ..QualityConfig::permissive() };
        assert_eq!(check("线粒体是一种存在于大多数真核细胞中的细胞", &cfg), Ok(()));
        assert_eq!(check("线粒体是一种存在于大多数", &cfg), Err("min_words"));
    }

    #[test]
    fn each_rule_fires() {
        let p = QualityConfig::permissive;
        assert_eq!(check("short", &QualityConfig { min_chars: Some(10), ..p() }), Err("min_chars"));
        assert_eq!(check("1234567890 abc", &QualityConfig { max_digit_frac: Some(0.3), ..p() }), Err("max_digit_frac"));
        assert_eq!(check("$$$ %%% ^^^ abc", &QualityConfig { max_symbol_frac: Some(0.25), ..p() }), Err("max_symbol_frac"));
        let repeated = "same line here\n".repeat(10) + "another line";
        assert_eq!(check(&repeated, &QualityConfig { max_dup_line_frac: Some(0.3), ..p() }), Err("max_dup_line_frac"));
        let paras = "a paragraph of text\n\n".repeat(5);
        assert_eq!(check(&paras, &QualityConfig { max_dup_para_frac: Some(0.3), ..p() }), Err("max_dup_para_frac"));
        let spam = "buy cheap pills now ".repeat(30);
        assert_eq!(check(&spam, &QualityConfig { top_ngram_char_frac: vec![(2, 0.2)], ..p() }), Err("top_ngram_char_frac"));
        assert_eq!(check(&spam, &QualityConfig { dup_ngram_char_frac: vec![(5, 0.15)], ..p() }), Err("dup_ngram_char_frac"));
        let bullets = "- one\n- two\n- three\nfour";
        assert_eq!(check(bullets, &QualityConfig { max_bullet_lines_frac: Some(0.5), ..p() }), Err("max_bullet_lines_frac"));
        assert_eq!(check("x...\ny...\nz", &QualityConfig { max_ellipsis_lines_frac: Some(0.3), ..p() }), Err("max_ellipsis_lines_frac"));
        assert_eq!(check("a ab abc", &QualityConfig { mean_word_length: Some((3.0, 10.0)), ..p() }), Err("mean_word_length"));
        assert_eq!(check("-- == ++ word", &QualityConfig { min_alpha_words_frac: Some(0.8), ..p() }), Err("min_alpha_words_frac"));
        assert_eq!(check("# # # a b c", &QualityConfig { max_hash_ellipsis_ratio: Some(0.1), ..p() }), Err("max_hash_ellipsis_ratio"));
    }

    #[test]
    fn chinese_repetition_is_caught_with_character_ngrams() {
        let spam = "买便宜的药就来这里".repeat(20);
        let cfg = QualityConfig::default();
        assert!(check(&spam, &cfg).is_err());
    }
}
