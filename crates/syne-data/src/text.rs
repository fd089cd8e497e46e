//! CJK-aware text units shared by the quality filters and MinHash shingling.
//!
//! Chinese and Japanese text has no spaces between words, so whitespace "words" would make a
//! whole Chinese paragraph one word. Here every CJK ideograph (and kana) is a word of its own,
//! while other text is split on whitespace as Gopher does.

/// Han ideographs (all extension blocks), CJK compatibility ideographs, Hiragana and Katakana.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // Extension A
        | 0x4E00..=0x9FFF    // Unified Ideographs
        | 0xF900..=0xFAFF    // Compatibility Ideographs
        | 0x20000..=0x2FA1F  // Extensions B-F, compatibility supplement
        | 0x30000..=0x3134F) // Extension G
}

/// Split `text` into CJK-aware words: whitespace-separated tokens, with each CJK character
/// split off as a word of its own. Punctuation stays attached to non-CJK tokens (as in Gopher);
/// a run of non-CJK, non-space characters between CJK characters is one word.
pub fn words(text: &str) -> Words<'_> {
    Words { rest: text }
}

/// Iterator returned by [`words`].
pub struct Words<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest.trim_start();
        let mut chars = s.char_indices();
        let (_, first) = chars.next()?;
        if is_cjk(first) {
            let len = first.len_utf8();
            self.rest = &s[len..];
            return Some(&s[..len]);
        }
        let end = chars.find(|&(_, c)| c.is_whitespace() || is_cjk(c)).map(|(i, _)| i).unwrap_or(s.len());
        self.rest = &s[end..];
        Some(&s[..end])
    }
}

/// Words for similarity hashing: lower-cased, punctuation removed, CJK characters one word each,
/// digits kept. Two documents that differ only in punctuation or case give the same sequence.
pub fn simplified_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each_simplified_word(text, |w| out.push(w.to_owned()));
    out
}

/// Like [`simplified_words`] without allocating a `String` per word: calls `f` on each word
/// (the slice is only valid during the call).
pub fn for_each_simplified_word(text: &str, mut f: impl FnMut(&str)) {
    let mut cur = String::new();
    let mut one = [0u8; 4];
    for c in text.chars() {
        if is_cjk(c) {
            if !cur.is_empty() {
                f(&cur);
                cur.clear();
            }
            f(c.encode_utf8(&mut one));
        } else if c.is_alphanumeric() {
            if c.is_ascii() {
                cur.push(c.to_ascii_lowercase());
            } else {
                cur.extend(c.to_lowercase());
            }
        } else if !cur.is_empty() {
            f(&cur);
            cur.clear();
        }
    }
    if !cur.is_empty() {
        f(&cur);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_characters_are_words() {
        let w: Vec<_> = words("我们 love 北京, ok？").collect();
        assert_eq!(w, vec!["我", "们", "love", "北", "京", ",", "ok？"]);
    }

    #[test]
    fn simplified_drops_punctuation_and_case() {
        assert_eq!(simplified_words("Hello, World! 你好。x2"), vec!["hello", "world", "你", "好", "x2"]);
    }
}

/// A `Hasher` for keys that are already uniformly distributed hashes (xxh3 values): it passes
/// them through instead of hashing them again with SipHash, which profiling showed to cost more
/// than the n-gram counting itself.
#[derive(Debug, Default, Clone, Copy)]
pub struct PrehashedHasher(u64);

impl std::hash::Hasher for PrehashedHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only reached for non-integer keys; still a usable (if slower) hash.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = (v as u64) ^ ((v >> 64) as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A hash map (or set, with `V = ()`) keyed by pre-hashed values.
pub type PrehashedMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<PrehashedHasher>>;

/// SplitMix64's finaliser: a bijective mix of 64 bits.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The next value of a SplitMix64 stream (seeded, portable, good enough for hash parameters
/// and shuffles; not for cryptography).
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    mix64(*state)
}

/// Hashes of every window of `n` consecutive values (`len - n + 1` of them), computed with a
/// rolling polynomial hash in O(len) instead of hashing each window's bytes, then mixed.
pub fn ngram_hashes(word_hashes: &[u64], n: usize) -> Vec<u64> {
    const P: u64 = 0x9E37_79B9_7F4A_7C15;
    if n == 0 || word_hashes.len() < n {
        return Vec::new();
    }
    let top = (1..n).fold(1u64, |acc, _| acc.wrapping_mul(P)); // P^(n-1)
    let mut h = word_hashes[..n].iter().fold(0u64, |acc, &w| acc.wrapping_mul(P).wrapping_add(w));
    let mut out = Vec::with_capacity(word_hashes.len() - n + 1);
    out.push(mix64(h ^ n as u64));
    for i in n..word_hashes.len() {
        h = h.wrapping_sub(word_hashes[i - n].wrapping_mul(top)).wrapping_mul(P).wrapping_add(word_hashes[i]);
        out.push(mix64(h ^ n as u64));
    }
    out
}

#[cfg(test)]
mod hash_tests {
    use super::*;

    #[test]
    fn rolling_ngram_hashes_equal_direct_ones() {
        let w: Vec<u64> = (0..50u64).map(|i| mix64(i % 7)).collect();
        for n in 1..8 {
            let rolled = ngram_hashes(&w, n);
            assert_eq!(rolled.len(), w.len() - n + 1);
            for (i, h) in rolled.iter().enumerate() {
                assert_eq!(*h, ngram_hashes(&w[i..i + n], n)[0]);
            }
            // Equal windows hash equal (the input repeats with period 7).
            assert_eq!(rolled[0], rolled[7]);
            assert_ne!(rolled[0], rolled[1]);
        }
        assert!(ngram_hashes(&w[..3], 4).is_empty());
    }
}
