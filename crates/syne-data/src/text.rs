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
        let end = chars
            .find(|&(_, c)| c.is_whitespace() || is_cjk(c))
            .map(|(i, _)| i)
            .unwrap_or(s.len());
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
